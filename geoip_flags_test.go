package main

import (
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"

	"github.com/mfa-operator/mfa-operator/controllers"
)

// The controller's --geoip-db reaches the challenge server's flags, and
// --geoip-volume-claim mounts the claim read-only where they point.
func TestGeoIPFlagsReachTheChallengeServer(t *testing.T) {
	cleanEnv(t)
	g := NewWithT(t)
	cf, err := parseControllerFlags([]string{"--public-url=https://auth.example.com", "--geoip-volume-claim=geoip",
		"--geoip-db=/var/lib/geoip/country.mmdb, /var/lib/geoip/asn.mmdb"})
	g.Expect(err).NotTo(HaveOccurred())
	o := cf.options()
	g.Expect(o.GeoIPDB).To(Equal("/var/lib/geoip/country.mmdb,/var/lib/geoip/asn.mmdb"))

	args := controllers.ChallengeArgs(o)
	wf, err := parseWebhookFlags(args[1:])
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(*wf.common.geoipDB).To(Equal(o.GeoIPDB))

	pod := controllers.ChallengeDeployment(o).Spec.Template.Spec
	g.Expect(pod.Volumes).To(ContainElement(corev1.Volume{Name: "geoip", VolumeSource: corev1.VolumeSource{
		PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "geoip", ReadOnly: true}}}))
	g.Expect(pod.Containers[0].VolumeMounts).To(ContainElement(corev1.VolumeMount{Name: "geoip", MountPath: controllers.GeoIPMountPath, ReadOnly: true}))

	// Without them, nothing changes in the Deployment.
	plain := controllers.ChallengeArgs(controllers.Options{Namespace: "mfa-system"})
	g.Expect(plain).NotTo(ContainElement(HavePrefix("--geoip-db")))
	g.Expect(controllers.ChallengeDeployment(controllers.Options{Namespace: "mfa-system"}).Spec.Template.Spec.Volumes).To(HaveLen(1))
}

// A webhook whose database does not open refuses to start, naming it.
func TestWebhookRefusesAGeoIPDatabaseThatDoesNotOpen(t *testing.T) {
	cleanEnv(t)
	g := NewWithT(t)
	code, _, errOut := runCLI(t, "webhook", "--config-dir", t.TempDir(), "--data-dir", t.TempDir(), "--geoip-db", "/nonexistent/geo.mmdb", "--metrics-addr=0", "--listen=127.0.0.1:0")
	g.Expect(code).To(Equal(exitFailed))
	g.Expect(errOut).To(ContainSubstring("--geoip-db: GeoIP database /nonexistent/geo.mmdb"))
}
