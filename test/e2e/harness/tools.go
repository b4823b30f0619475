package harness

import (
	"bytes"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// RequireTools fails the test, naming the make target that installs it,
// when a program the components need is missing.
func RequireTools(t testing.TB, components []string) {
	t.Helper()
	root := RepoRoot(t)
	var missing []string
	for _, b := range []string{"etcd", "kube-apiserver", "kubectl"} {
		if _, err := os.Stat(filepath.Join(k8sAssets(root), b)); err != nil {
			missing = append(missing, filepath.Join(k8sAssets(root), b)+" (run: make control-plane)")
		}
	}
	for _, p := range []string{"openssl", "curl", "go"} {
		if _, err := exec.LookPath(p); err != nil {
			missing = append(missing, p)
		}
	}
	if contains(components, Nginx) {
		if _, err := exec.LookPath("nginx"); err != nil {
			missing = append(missing, "nginx (run: make deps)")
		}
		if _, err := os.Stat("/usr/lib/nginx/modules/ngx_http_set_misc_module.so"); err != nil {
			missing = append(missing, "nginx's set-misc module, libnginx-mod-http-set-misc (run: make deps)")
		}
	}
	if contains(components, Traefik) {
		if _, err := traefikPath(root); err != nil {
			missing = append(missing, err.Error())
		}
	}
	if len(missing) > 0 {
		t.Fatalf("missing: %s", strings.Join(missing, "; "))
	}
}

// RequireBinary fails the test when program is not on PATH.
func RequireBinary(t testing.TB, program string) string {
	t.Helper()
	p, err := exec.LookPath(program)
	if err != nil {
		t.Fatalf("%s is missing (run: make deps)", program)
	}
	return p
}

// k8sAssets is KUBEBUILDER_ASSETS, or bin/k8s/<version of client-go>.
func k8sAssets(root string) string {
	if d := os.Getenv("KUBEBUILDER_ASSETS"); d != "" {
		return d
	}
	b, _ := os.ReadFile(filepath.Join(root, "go.mod"))
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "k8s.io/client-go" {
			return filepath.Join(root, "bin", "k8s", "v1."+strings.TrimPrefix(f[1], "v0."))
		}
	}
	return filepath.Join(root, "bin", "k8s")
}

// DecodeQR reads a QR code image (PNG) with the real zbarimg and returns
// its text.
func DecodeQR(t testing.TB, png []byte) string {
	t.Helper()
	zbarimg := RequireBinary(t, "zbarimg")
	f := filepath.Join(t.TempDir(), "qr.png")
	if err := os.WriteFile(f, png, 0o600); err != nil {
		t.Fatal(err)
	}
	// QR codes only: a 1D decoder may see a spurious barcode in a QR code's
	// modules.
	out, err := exec.Command(zbarimg, "--quiet", "--raw", "-Sdisable", "-Sqrcode.enable", f).Output()
	if err != nil {
		t.Fatalf("zbarimg found no QR code in the %d-byte image: %v", len(png), err)
	}
	text := strings.TrimRight(string(out), "\n")
	if strings.Contains(text, "\n") {
		t.Fatalf("zbarimg found more than one QR code: %q", text)
	}
	return text
}

// OTP is a TOTP account as an authenticator app holds it after scanning
// the enrolment QR code; codes come from the real oathtool.
type OTP struct {
	URI       string
	Secret    string // base32
	Issuer    string
	Account   string
	Algorithm string // SHA1, SHA256, SHA512
	Digits    int
	Period    time.Duration
	// Skew is how many steps the server accepts either side of now; the
	// steps NextCode picks stay within it.
	Skew int64
	// Last is the last time step a code was used for.
	Last int64
}

// ParseOTPAuth reads an otpauth://totp/ URI (Google Authenticator's key
// URI format) with its defaults.
func ParseOTPAuth(t testing.TB, uri string) *OTP {
	t.Helper()
	u, err := url.Parse(uri)
	if err != nil || u.Scheme != "otpauth" || u.Host != "totp" {
		t.Fatalf("not an otpauth://totp/ URI: %q", uri)
	}
	q := u.Query()
	o := &OTP{URI: uri, Secret: q.Get("secret"), Issuer: q.Get("issuer"), Algorithm: "SHA1", Digits: 6, Period: 30 * time.Second, Skew: 1}
	o.Account = strings.TrimPrefix(u.Path, "/")
	if _, acct, ok := strings.Cut(o.Account, ":"); ok {
		o.Account = strings.TrimSpace(acct)
	}
	if a := q.Get("algorithm"); a != "" {
		o.Algorithm = strings.ToUpper(a)
	}
	if d := q.Get("digits"); d != "" {
		o.Digits, err = strconv.Atoi(d)
		if err != nil {
			t.Fatalf("digits=%q in %q", d, uri)
		}
	}
	if p := q.Get("period"); p != "" {
		s, err := strconv.Atoi(p)
		if err != nil {
			t.Fatalf("period=%q in %q", p, uri)
		}
		o.Period = time.Duration(s) * time.Second
	}
	if o.Secret == "" {
		t.Fatalf("no secret in %q", uri)
	}
	return o
}

// Step is the time step of t.
func (o *OTP) Step(at time.Time) int64 { return at.Unix() / int64(o.Period/time.Second) }

// CodeAt returns the code of a time step, computed by oathtool.
func (o *OTP) CodeAt(t testing.TB, step int64) string {
	t.Helper()
	oathtool := RequireBinary(t, "oathtool")
	at := step * int64(o.Period/time.Second)
	out, err := exec.Command(oathtool,
		"--totp="+o.Algorithm, "--base32",
		"--digits="+strconv.Itoa(o.Digits),
		"--time-step-size="+strconv.Itoa(int(o.Period/time.Second))+"s",
		"--now=@"+strconv.FormatInt(at, 10),
		o.Secret).Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("oathtool: %v %s", err, bytes.TrimSpace(stderr))
	}
	return strings.TrimSpace(string(out))
}

// NextCode returns the code of the earliest time step, not before the
// current one, after the last one used, as long as the server accepts it
// now (at most Skew steps ahead of its clock); when every such step is
// used up it waits for the clock to reach the next one.
func (o *OTP) NextCode(t testing.TB) (string, int64) {
	t.Helper()
	deadline := time.Now().Add(o.Period*time.Duration(o.Skew+2) + 5*time.Second)
	for {
		now := o.Step(time.Now())
		step := max(now, o.Last+1)
		// A code for the current step that is about to end is still
		// accepted next step when Skew >= 1; with no skew, wait for a
		// fresh step rather than race the boundary.
		fresh := o.Skew > 0 || o.secondsLeft() > 3
		if step <= now+o.Skew && fresh {
			o.Last = step
			return o.CodeAt(t, step), step
		}
		if time.Now().After(deadline) {
			t.Fatalf("no usable TOTP step before %s (last used %d)", deadline, o.Last)
		}
		// Wait for the clock (the only thing that changes the answer).
		time.Sleep(200 * time.Millisecond)
	}
}

// secondsLeft is how long the current time step lasts.
func (o *OTP) secondsLeft() float64 {
	p := o.Period.Seconds()
	now := float64(time.Now().UnixNano()) / 1e9
	return p - (now - float64(int64(now/p))*p)
}

// String shows the account without its secret.
func (o *OTP) String() string {
	return fmt.Sprintf("%s (%s, %s, %d digits, %s)", o.Account, o.Issuer, o.Algorithm, o.Digits, o.Period)
}
