package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestEmitWritesEveryFieldAndCounts(t *testing.T) {
	g := NewWithT(t)
	var buf bytes.Buffer
	reg := prometheus.NewRegistry()
	l := New(slog.New(slog.NewJSONHandler(&buf, nil)), reg)
	ctx := WithClient(context.Background(), Client{Policy: "apps/admin", IP: "203.0.113.7", UserAgent: strings.Repeat("u", 300)})
	l.Emit(ctx, Record{Event: EventReset, User: "alice", Provider: "apps/totp", Outcome: OutcomeSuccess, Actor: "helpdesk"})

	var line map[string]any
	g.Expect(json.Unmarshal(buf.Bytes(), &line)).To(Succeed())
	g.Expect(line).To(HaveKeyWithValue("audit", true))
	g.Expect(line).To(HaveKeyWithValue("event", "reset"))
	g.Expect(line).To(HaveKeyWithValue("user", "alice"))
	g.Expect(line).To(HaveKeyWithValue("policy", "apps/admin"))
	g.Expect(line).To(HaveKeyWithValue("provider", "apps/totp"))
	g.Expect(line).To(HaveKeyWithValue("client_ip", "203.0.113.7"))
	g.Expect(line).To(HaveKeyWithValue("user_agent", strings.Repeat("u", maxUserAgent)), "the User-Agent is bounded")
	g.Expect(line).To(HaveKeyWithValue("outcome", "success"))
	g.Expect(line).To(HaveKeyWithValue("actor", "helpdesk"))
	g.Expect(line).To(HaveKeyWithValue("reason", ""))
	g.Expect(testutil.ToFloat64(l.count.WithLabelValues(EventReset))).To(Equal(1.0))
	g.Expect(testutil.ToFloat64(l.count.WithLabelValues(EventLockout))).To(BeZero())
	n, err := testutil.GatherAndCount(reg, "mfa_audit_events_total")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(n).To(Equal(len(Events)), "every event's series exists from the start")
}

func TestRecordFieldsWinOverTheContext(t *testing.T) {
	g := NewWithT(t)
	var buf bytes.Buffer
	l := New(slog.New(slog.NewJSONHandler(&buf, nil)), nil)
	ctx := WithClient(context.Background(), Client{Policy: "apps/admin", IP: "203.0.113.7"})
	l.Emit(ctx, Record{Event: EventRevocation, User: "bob", Policy: "apps/other", Outcome: OutcomeFailure})
	var line map[string]any
	g.Expect(json.Unmarshal(buf.Bytes(), &line)).To(Succeed())
	g.Expect(line).To(HaveKeyWithValue("policy", "apps/other"))
	g.Expect(line).To(HaveKeyWithValue("client_ip", "203.0.113.7"))
	g.Expect(line).To(HaveKeyWithValue("level", "WARN"), "a failure is a warning")
}

func TestNilLoggerIsANoOp(t *testing.T) {
	var l *Logger
	l.Emit(context.Background(), Record{Event: EventReset})
}
