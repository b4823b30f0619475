package webhook

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	dto "github.com/prometheus/client_model/go"

	"github.com/mfa-operator/mfa-operator/internal/source"
)

// logLine is one JSON log record: its level and message.
type logLine struct {
	Level string `json:"level"`
	Msg   string `json:"msg"`
}

// logsSince returns the records written to f.logs after offset.
func (f *coreFixture) logsSince(offset int) []logLine {
	f.t.Helper()
	var out []logLine
	for _, l := range strings.Split(strings.TrimSpace(f.logs.String()[offset:]), "\n") {
		if l == "" {
			continue
		}
		var r logLine
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			f.t.Fatalf("log line %q: %v", l, err)
		}
		out = append(out, r)
	}
	return out
}

// Before the controller has written the bundle and keyring Secrets, the
// server waits for them: that is logged at INFO, once, and /readyz says
// not ready. A bundle or keyring that is there and not valid stays an
// ERROR, before and after the first load, and so does one that goes
// missing after it was loaded.
func TestWaitingForTheFirstBundleIsNotAnError(t *testing.T) {
	g := NewWithT(t)
	f, cfg := newStandalone(t)
	refusedBundles := func() float64 {
		var m dto.Metric
		g.Expect(f.s.metrics.reloads.WithLabelValues("bundle", "refused").Write(&m)).To(Succeed())
		return m.GetCounter().GetValue()
	}
	missing := func(name string) error {
		return fmt.Errorf("Secret mfa-system/%s not found; the controller writes it: %w", name, source.ErrMissing)
	}

	offset := f.logs.Len()
	f.s.config.RefuseBundle(missing("mfa-bundle"))
	f.s.config.RefuseKeyring(missing("mfa-keyring"))
	g.Expect(f.logsSince(offset)).To(Equal([]logLine{
		{Level: "INFO", Msg: "waiting for the bundle; nothing is in force yet"},
		{Level: "INFO", Msg: "waiting for the keyring; nothing is in force yet"},
	}))
	code, body := f.readyz()
	g.Expect(code).To(Equal(http.StatusServiceUnavailable))
	g.Expect(body).To(ContainSubstring("not ready: no bundle loaded yet; no keyring loaded yet;"))
	g.Expect(body).To(ContainSubstring("Secret mfa-system/mfa-bundle not found"))
	g.Expect(refusedBundles()).To(BeZero(), "waiting is not a refusal")

	// Polled again, still missing: nothing new to say at INFO.
	offset = f.logs.Len()
	f.s.config.RefuseBundle(missing("mfa-bundle"))
	g.Expect(f.logsSince(offset)).To(Equal([]logLine{{Level: "DEBUG", Msg: "waiting for the bundle; nothing is in force yet"}}))

	// There, but not valid: an error.
	offset = f.logs.Len()
	f.s.config.RefuseBundle(errors.New("Secret mfa-system/mfa-bundle refused: no bundle"))
	g.Expect(f.logsSince(offset)).To(Equal([]logLine{{Level: "ERROR", Msg: "bundle refused; no bundle is in force yet"}}))
	g.Expect(refusedBundles()).To(Equal(1.0))
	code, _ = f.readyz()
	g.Expect(code).To(Equal(http.StatusServiceUnavailable))

	// Loaded, then gone: the last good stays, and that is an error.
	writeFile(t, filepath.Join(cfg, "app.yaml"), standalonePolicy("Allow"))
	reloadConfigDir(f.s)
	code, body = f.readyz()
	g.Expect(code).To(Equal(http.StatusOK), body)
	offset = f.logs.Len()
	f.s.config.RefuseBundle(missing("mfa-bundle"))
	g.Expect(f.logsSince(offset)).To(Equal([]logLine{{Level: "ERROR", Msg: "bundle refused; the last good bundle stays in force"}}))
	g.Expect(refusedBundles()).To(Equal(2.0))
}
