package duo_test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"testing"

	. "github.com/onsi/gomega"

	"github.com/mfa-operator/mfa-operator/internal/duo"
	"github.com/mfa-operator/mfa-operator/internal/duotest"
)

// Preauth, push, auth_status and passcode against the test server, input
// refused before calling Duo, and the requests a whole exchange sends.

func TestPreauthResults(t *testing.T) {
	s := duotest.NewServer(t)
	c := newClient(t, s)
	tests := []struct {
		user        string
		wantResult  string
		wantDevices int
		wantPush    bool
		wantPortal  bool
	}{
		{duotest.UserApprove, duo.PreauthAuth, 1, true, false},
		{duotest.UserNoPush, duo.PreauthAuth, 1, false, false},
		{duotest.UserBypass, duo.PreauthAllow, 0, false, false},
		{duotest.UserEnroll, duo.PreauthEnroll, 0, false, true},
		{duotest.UserLockedOut, duo.PreauthDeny, 0, false, false},
		{"someone-new", duo.PreauthEnroll, 0, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.user, func(t *testing.T) {
			g := NewWithT(t)
			res, err := c.Preauth(context.Background(), tt.user, "192.0.2.10")
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(res.Result).To(Equal(tt.wantResult))
			g.Expect(res.StatusMsg).NotTo(BeEmpty())
			g.Expect(res.Devices).To(HaveLen(tt.wantDevices))
			g.Expect(res.CanPush()).To(Equal(tt.wantPush))
			if tt.wantPortal {
				g.Expect(res.EnrollPortalURL).To(HavePrefix("https://" + s.APIHost() + "/portal?"))
			} else {
				g.Expect(res.EnrollPortalURL).To(BeEmpty())
			}
		})
	}
}

func TestPreauthReportsDeviceDetails(t *testing.T) {
	g := NewWithT(t)
	s := duotest.NewServer(t)
	res, err := newClient(t, s).Preauth(context.Background(), duotest.UserApprove, "")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res.Devices).To(ConsistOf(duo.Device{
		ID: "DPFZRS9FB0D46QFTM891", Type: "phone", Number: "XXX-XXX-0100", DisplayName: "iOS (XXX-XXX-0100)",
		Capabilities: []string{"auto", "push", "sms", "phone", "mobile_otp"},
	}))
	g.Expect(res.Devices[0].Label()).To(Equal("iOS (XXX-XXX-0100)"))
	g.Expect(res.Devices[0].Can(duo.CapabilityMobileOTP)).To(BeTrue())
	g.Expect(s.RequestsTo("/auth/v2/preauth")[0].Params).To(Equal(url.Values{"username": {duotest.UserApprove}}))
}

// pollPush polls AuthStatus until Duo's answer is final, and counts the
// waiting answers.
func pollPush(t *testing.T, c duo.Client, txid string) (final *duo.AuthResult, waiting int) {
	t.Helper()
	for range 20 {
		res, err := c.AuthStatus(context.Background(), txid)
		if err != nil {
			t.Fatalf("AuthStatus: %v", err)
		}
		if !res.Waiting() {
			return res, waiting
		}
		waiting++
	}
	t.Fatalf("push %s still waiting after %d polls", txid, waiting)
	return nil, waiting
}

func TestPushOutcomesThroughAuthStatus(t *testing.T) {
	s := duotest.NewServer(t)
	c := newClient(t, s)
	tests := []struct {
		user        string
		wantResult  string
		wantStatus  string
		wantWaiting int
	}{
		{duotest.UserApprove, duo.ResultAllow, "allow", duotest.ApprovePolls},
		{duotest.UserDeny, duo.ResultDeny, "deny", 1},
		{duotest.UserTimeout, duo.ResultDeny, "timeout", 1},
		{duotest.UserFraud, duo.ResultDeny, "fraud", 1},
		{duotest.UserBypass, duo.ResultAllow, "bypass", 0},
	}
	for _, tt := range tests {
		t.Run(tt.user, func(t *testing.T) {
			g := NewWithT(t)
			txid, err := c.Push(context.Background(), duo.PushRequest{Username: tt.user, IPAddr: "192.0.2.10"})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(txid).NotTo(BeEmpty())

			final, waiting := pollPush(t, c, txid)
			g.Expect(final.Result).To(Equal(tt.wantResult))
			g.Expect(final.Status).To(Equal(tt.wantStatus))
			g.Expect(final.StatusMsg).NotTo(BeEmpty())
			g.Expect(final.Allowed()).To(Equal(tt.wantResult == duo.ResultAllow))
			g.Expect(waiting).To(Equal(tt.wantWaiting))
		})
	}
}

func TestPushSendsPushinfoIPAddrAndDisplayFields(t *testing.T) {
	g := NewWithT(t)
	s := duotest.NewServer(t)
	_, err := newClient(t, s).Push(context.Background(), duo.PushRequest{
		Username:        duotest.UserApprove,
		IPAddr:          "::ffff:192.0.2.10",
		PushInfo:        url.Values{"app": {"admin.example.com"}, "from": {"mfa operator"}, "policy": {"apps/admin"}},
		Type:            "Admin login",
		DisplayUsername: "Approve User",
	})
	g.Expect(err).NotTo(HaveOccurred())

	reqs := s.RequestsTo("/auth/v2/auth")
	g.Expect(reqs).To(HaveLen(1))
	g.Expect(reqs[0].Method).To(Equal(http.MethodPost))
	g.Expect(reqs[0].Params).To(Equal(url.Values{
		"username":         {duotest.UserApprove},
		"factor":           {"push"},
		"device":           {"auto"},
		"async":            {"1"},
		"ipaddr":           {"192.0.2.10"},
		"pushinfo":         {"app=admin.example.com&from=mfa%20operator&policy=apps%2Fadmin"},
		"type":             {"Admin login"},
		"display_username": {"Approve User"},
	}))
}

func TestPushToAGivenDevice(t *testing.T) {
	g := NewWithT(t)
	s := duotest.NewServer(t)
	c := newClient(t, s)
	txid, err := c.Push(context.Background(), duo.PushRequest{Username: duotest.UserApprove, Device: "DPFZRS9FB0D46QFTM891"})
	g.Expect(err).NotTo(HaveOccurred())
	final, _ := pollPush(t, c, txid)
	g.Expect(final.Allowed()).To(BeTrue())
	g.Expect(s.RequestsTo("/auth/v2/auth")[0].Params.Get("device")).To(Equal("DPFZRS9FB0D46QFTM891"))
}

func TestPushWithoutPushDeviceIsATerminalAPIError(t *testing.T) {
	g := NewWithT(t)
	s := duotest.NewServer(t)
	_, err := newClient(t, s).Push(context.Background(), duo.PushRequest{Username: duotest.UserNoPush})

	var apiErr *duo.APIError
	g.Expect(errors.As(err, &apiErr)).To(BeTrue(), "%v", err)
	g.Expect(apiErr.Code).To(Equal(40002))
	g.Expect(apiErr.MessageDetail).To(Equal("device"))
	g.Expect(apiErr.HTTPStatus).To(Equal(http.StatusBadRequest))
	g.Expect(apiErr.Terminal()).To(BeTrue())
	g.Expect(apiErr.BadCredentials()).To(BeFalse())
}

func TestAuthStatusOfUnknownTransactionIsAnAPIError(t *testing.T) {
	g := NewWithT(t)
	s := duotest.NewServer(t)
	_, err := newClient(t, s).AuthStatus(context.Background(), "00000000-0000-0000-0000-000000000000")

	var apiErr *duo.APIError
	g.Expect(errors.As(err, &apiErr)).To(BeTrue(), "%v", err)
	g.Expect(apiErr.Code).To(Equal(40002))
	g.Expect(apiErr.MessageDetail).To(Equal("txid"))
}

func TestPasscode(t *testing.T) {
	s := duotest.NewServer(t)
	c := newClient(t, s)
	// Steps run in order: a valid passcode works once.
	steps := []struct {
		name       string
		user       string
		passcode   string
		wantResult string
		wantStatus string
	}{
		{"wrong passcode", duotest.UserApprove, "000000", duo.ResultDeny, "deny"},
		{"valid passcode", duotest.UserApprove, duotest.ValidPasscode, duo.ResultAllow, "allow"},
		{"valid passcode used again", duotest.UserApprove, duotest.ValidPasscode, duo.ResultDeny, "deny"},
		{"valid passcode of a user without push", duotest.UserNoPush, " " + duotest.ValidPasscode + " ", duo.ResultAllow, "allow"},
		{"locked-out user", duotest.UserLockedOut, duotest.ValidPasscode, duo.ResultDeny, "locked_out"},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			g := NewWithT(t)
			res, err := c.Passcode(context.Background(), st.user, st.passcode, "192.0.2.10")
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(res.Result).To(Equal(st.wantResult))
			g.Expect(res.Status).To(Equal(st.wantStatus))
			g.Expect(res.StatusMsg).NotTo(BeEmpty())
		})
	}
	last := s.RequestsTo("/auth/v2/auth")[1]
	NewWithT(t).Expect(last.Params).To(Equal(url.Values{
		"username": {duotest.UserApprove}, "factor": {"passcode"}, "passcode": {duotest.ValidPasscode}, "ipaddr": {"192.0.2.10"},
	}))
}

func TestInvalidInputIsRefusedBeforeCallingDuo(t *testing.T) {
	s := duotest.NewServer(t)
	c := newClient(t, s)
	ctx := context.Background()
	tests := []struct {
		name      string
		call      func() error
		wantField string
	}{
		{"empty username", func() error { _, err := c.Preauth(ctx, "", ""); return err }, "username"},
		{"username with a newline", func() error { _, err := c.Preauth(ctx, "a\nb", ""); return err }, "username"},
		{"invalid ipaddr", func() error { _, err := c.Preauth(ctx, "a", "10.0.0.300"); return err }, "ipaddr"},
		{"empty passcode", func() error { _, err := c.Passcode(ctx, "a", "  ", ""); return err }, "passcode"},
		{"empty txid", func() error { _, err := c.AuthStatus(ctx, ""); return err }, "txid"},
		{"pushinfo too long", func() error {
			_, err := c.Push(ctx, duo.PushRequest{Username: "a", PushInfo: url.Values{"x": {strings.Repeat("y", 20000)}}})
			return err
		}, "pushinfo"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			err := tt.call()
			var in *duo.InputError
			g.Expect(errors.As(err, &in)).To(BeTrue(), "%v", err)
			g.Expect(in.Field).To(Equal(tt.wantField))
			g.Expect(duo.IsTerminal(err)).To(BeTrue())
			g.Expect(duo.IsUnreachable(err)).To(BeFalse())
		})
	}
	NewWithT(t).Expect(s.Requests()).To(BeEmpty())
}

// TestRequestShapes logs the requests a whole Duo exchange sends, as the
// test server sees them (for the documentation).
func TestRequestShapes(t *testing.T) {
	g := NewWithT(t)
	s := duotest.NewServer(t)
	c := newClient(t, s)
	ctx := context.Background()
	g.Expect(c.Check(ctx)).To(Succeed())
	_, err := c.Preauth(ctx, duotest.UserApprove, "192.0.2.10")
	g.Expect(err).NotTo(HaveOccurred())
	txid, err := c.Push(ctx, duo.PushRequest{
		Username: duotest.UserApprove, IPAddr: "192.0.2.10",
		PushInfo: url.Values{"app": {"admin.example.com"}, "policy": {"apps/admin"}},
	})
	g.Expect(err).NotTo(HaveOccurred())
	pollPush(t, c, txid)
	_, err = c.Passcode(ctx, duotest.UserApprove, duotest.ValidPasscode, "192.0.2.10")
	g.Expect(err).NotTo(HaveOccurred())

	reqs := s.Requests()
	g.Expect(reqs).To(HaveLen(7))
	for _, r := range reqs {
		g.Expect(r.HTTPStatus).To(Equal(http.StatusOK))
		keys := make([]string, 0, len(r.Params))
		for k := range r.Params {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var b strings.Builder
		for _, k := range keys {
			b.WriteString(" " + k + "=" + r.Params.Get(k))
		}
		t.Logf("%-4s %-20s%s", r.Method, r.Path, b.String())
	}
}
