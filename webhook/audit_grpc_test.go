package webhook

import (
	"context"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	. "github.com/onsi/gomega"
	"google.golang.org/grpc/codes"
)

// Envoy's gRPC Check lets every audited decision through too, removing
// any X-MFA-* header the client sent; Enforce denies.
func TestAuditPolicyNeverBlocksEnvoyCheck(t *testing.T) {
	for _, mode := range []string{"Audit", "Enforce"} {
		f := newCoreServer(t, modePolicyYAML(mode), trustLoopback)
		client := authv3.NewAuthorizationClient(serveGRPC(t, f))
		for _, c := range modeCases {
			t.Run(mode+"/"+c.name, func(t *testing.T) {
				g := NewWithT(t)
				h := map[string]string{":authority": "shadow.example.com", "x-mfa-user": "forged"}
				if !c.identity {
					h["x-auth-request-email"] = ""
				}
				resp, err := client.Check(context.Background(), envoyCheck(c.path, h, map[string]string{"mfa-policy": "apps/shadow"}))
				g.Expect(err).NotTo(HaveOccurred())
				if mode == "Enforce" {
					g.Expect(codes.Code(resp.GetStatus().GetCode()) == codes.OK).To(Equal(c.enforce == 200))
					return
				}
				g.Expect(codes.Code(resp.GetStatus().GetCode())).To(Equal(codes.OK))
				ok := resp.GetOkResponse()
				g.Expect(ok.GetHeaders()).To(BeEmpty())
				g.Expect(ok.GetHeadersToRemove()).To(ConsistOf("x-mfa-user", "x-mfa-multifactor", "x-mfa-assertion"))
			})
		}
		if mode == "Audit" {
			NewWithT(t).Expect(metricsBody(f)).To(ContainSubstring(`mfa_audit_decisions_total{policy="apps/shadow",rule="blocked",would="deny"} 1`))
		}
	}
}
