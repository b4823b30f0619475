//go:build e2e

package e2e

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"
	. "github.com/onsi/gomega"

	"github.com/mfa-operator/mfa-operator/test/e2e/harness"
)

func phoneViewport() chromedp.Action[chromedp.Void] {
	return chromedp.EmulateViewport(phoneWidth, phoneHeight, chromedp.EmulateScale(2), chromedp.EmulateMobile)
}

func desktopViewport() chromedp.Action[chromedp.Void] {
	return chromedp.EmulateViewport(desktopWidth, desktopHeight)
}

// keyBrowser is a Chromium with virtual authenticators on the demo's app.
type keyBrowser struct {
	t   *testing.T
	g   Gomega
	ctx context.Context
	env *harness.Env
}

func (b *keyBrowser) call(what string, f func(ctx context.Context) error) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := f(ctx); err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
}

func (b *keyBrowser) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	b.call(what, func(ctx context.Context) error { return chromedp.Do(ctx, actions...) })
}

func (b *keyBrowser) text(css string) string {
	b.t.Helper()
	var s string
	b.call("read "+css, func(ctx context.Context) (err error) {
		s, err = chromedp.Run(ctx, chromedp.Text(chromedp.CSS(css)))
		return err
	})
	return strings.TrimSpace(s)
}

func (b *keyBrowser) location() string {
	b.t.Helper()
	var s string
	b.call("location", func(ctx context.Context) (err error) {
		s, err = chromedp.Run(ctx, chromedp.Location())
		return err
	})
	return s
}

func (b *keyBrowser) screenshot(name string) {
	b.t.Helper()
	b.call("screenshot "+name, func(ctx context.Context) error {
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err == nil {
			b.t.Logf("screenshot %s", harness.SaveArtifact(b.t, name, png))
		}
		return err
	})
}

// screenshotSignIn keeps the sign-in page at both widths.
func (b *keyBrowser) screenshotSignIn() {
	b.t.Helper()
	b.openSignIn()
	b.screenshot("webauthn-signin-375.png")
	b.do("desktop width", desktopViewport(), chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS("#webauthn-form")))
	b.screenshot("webauthn-signin-1280.png")
	b.do("phone width", phoneViewport())
}

func (b *keyBrowser) addAuthenticator(transport webauthn.AuthenticatorTransport) webauthn.AuthenticatorID {
	b.t.Helper()
	var id webauthn.AuthenticatorID
	b.call("add a virtual authenticator", func(ctx context.Context) error {
		r, err := chromedp.Call(ctx, webauthn.AddVirtualAuthenticator, webauthn.AddVirtualAuthenticatorParams{Options: &webauthn.VirtualAuthenticatorOptions{
			Protocol: webauthn.AuthenticatorProtocolCtap2, Ctap2version: webauthn.Ctap2versionCtap21, Transport: transport,
			HasResidentKey: true, HasUserVerification: true, IsUserVerified: true, AutomaticPresenceSimulation: true,
		}})
		id = r.AuthenticatorID
		return err
	})
	return id
}

func (b *keyBrowser) removeAuthenticator(id webauthn.AuthenticatorID) {
	b.t.Helper()
	b.call("remove a virtual authenticator", func(ctx context.Context) error {
		_, err := chromedp.Call(ctx, webauthn.RemoveVirtualAuthenticator, webauthn.RemoveVirtualAuthenticatorParams{AuthenticatorID: id})
		return err
	})
}

func (b *keyBrowser) credentials(id webauthn.AuthenticatorID) []*webauthn.Credential {
	b.t.Helper()
	var creds []*webauthn.Credential
	b.call("read the authenticator's credentials", func(ctx context.Context) error {
		r, err := chromedp.Call(ctx, webauthn.GetCredentials, webauthn.GetCredentialsParams{AuthenticatorID: id})
		creds = r.Credentials
		return err
	})
	return creds
}

// newSession forgets the browser's cookies: a new browser session.
func (b *keyBrowser) newSession() {
	b.t.Helper()
	b.call("clear cookies", harness.ClearCookies)
}

func (b *keyBrowser) openSignIn() {
	b.t.Helper()
	rd := url.QueryEscape(b.env.URL + "/admin")
	b.do("open the sign-in page", chromedp.Navigate(b.env.URL+"/challenge/apps/admin?provider=webauthn&rd="+rd),
		chromedp.WaitVisible(chromedp.CSS("#webauthn-form")))
	b.g.Expect(b.text("h1")).To(Equal("Use your security key or passkey"))
}

func (b *keyBrowser) signIn(what string) {
	b.t.Helper()
	b.openSignIn()
	b.do(what, chromedp.Click(chromedp.CSS("#webauthn-form button")), chromedp.WaitVisible(chromedp.CSS("#multifactor")))
}

// captureAnswer opens the sign-in page, lets the key answer and returns
// the form the page would post; window.__send() posts it.
func (b *keyBrowser) captureAnswer(what string) string {
	b.t.Helper()
	b.openSignIn()
	b.do("hold the form", chromedp.Evaluate[chromedp.Void](`(() => {
		const submit = HTMLFormElement.prototype.submit;
		HTMLFormElement.prototype.submit = function () {
			const form = this;
			window.__form = new URLSearchParams(new FormData(form)).toString();
			window.__send = () => submit.call(form);
		};
	})()`))
	b.do(what, chromedp.Click(chromedp.CSS("#webauthn-form button")))
	var body string
	b.call("wait for the answer", func(ctx context.Context) (err error) {
		body, err = chromedp.Run(ctx, chromedp.Poll[string](`window.__form`))
		return err
	})
	return body
}

// cookieHeader is the browser's cookies for the app, as nginx passes them.
func (b *keyBrowser) cookieHeader() string {
	b.t.Helper()
	var parts []string
	b.call("read cookies", func(ctx context.Context) error {
		r, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{b.env.URL}})
		for _, c := range r.Cookies {
			parts = append(parts, c.Name+"="+c.Value)
		}
		return err
	})
	return strings.Join(parts, "; ")
}

// post sends a form to a challenge server as nginx would pass it.
func (b *keyBrowser) post(target, body, cookies string) (int, string) {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodPost, target, strings.NewReader(body))
	b.g.Expect(err).NotTo(HaveOccurred())
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Cookie", cookies)
	req.Header.Set("Origin", b.env.URL)
	req.Header.Set("X-Auth-Request-Email", b.env.User)
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	b.g.Expect(err).NotTo(HaveOccurred())
	defer resp.Body.Close()
	page, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(page)
}

// amr is the amr claim of the assertion the app received.
func (b *keyBrowser) amr() []string {
	b.t.Helper()
	var amr []string
	b.call("read the assertion", func(ctx context.Context) (err error) {
		amr, err = chromedp.Run(ctx, chromedp.Evaluate[[]string](`fetch(location.href, {headers: {Accept: "application/json"}})
			.then(r => r.json())
			.then(w => JSON.parse(atob(w.assertion.split(".")[1].replace(/-/g, "+").replace(/_/g, "/"))).amr)`, chromedp.EvalAwaitPromise))
		return err
	})
	return amr
}

// clonedCredential is WebAuthn.addCredential's credential with only the
// fields a copied key has (the protocol type also sends extensions this
// Chromium's virtual authenticators refuse).
type clonedCredential struct {
	CredentialID         []byte  `json:"credentialId"`
	IsResidentCredential bool    `json:"isResidentCredential"`
	RpID                 string  `json:"rpId"`
	PrivateKey           []byte  `json:"privateKey"`
	UserHandle           []byte  `json:"userHandle,omitempty"`
	SignCount            float64 `json:"signCount"`
}

type addClonedCredentialParams struct {
	AuthenticatorID webauthn.AuthenticatorID `json:"authenticatorId"`
	Credential      clonedCredential         `json:"credential"`
}

var addClonedCredential = cdp.Command[addClonedCredentialParams, cdp.Empty]{Method: webauthn.CommandAddCredential}

// addCredential copies c into authenticator id with its counter set to
// signCount, as a cloned key would hold it.
func (b *keyBrowser) addCredential(id webauthn.AuthenticatorID, c *webauthn.Credential, signCount float64) {
	b.t.Helper()
	b.call("add a copied credential", func(ctx context.Context) error {
		_, err := chromedp.Call(ctx, addClonedCredential, addClonedCredentialParams{AuthenticatorID: id, Credential: clonedCredential{
			CredentialID: c.CredentialID, IsResidentCredential: c.IsResidentCredential, RpID: c.RpID,
			PrivateKey: c.PrivateKey, UserHandle: c.UserHandle, SignCount: signCount,
		}})
		return err
	})
}
