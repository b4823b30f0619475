// Command sampleapp is the app the local demo and the end-to-end tests put
// behind nginx and the challenge server. It shows who nginx says the user
// is: the X-MFA-User and X-MFA-Multifactor headers that nginx copies from
// the /auth answer (ingress-nginx's auth-response-headers), and whether an
// X-MFA-Assertion came along.
//
// With --jwks-url it verifies the assertion as an app should (signature by
// a published key, aud the request's host, not expired).
//
// It answers every path: JSON when the client asks for application/json,
// a small HTML page otherwise; /healthz answers "ok".
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"html/template"
	"log"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// Whoami is what the app saw of a request.
type Whoami struct {
	User         string `json:"user"`
	Multifactor  string `json:"multifactor"`
	HasAssertion bool   `json:"hasAssertion"`
	// Assertion is the signed X-MFA-Assertion itself, for clients that
	// verify it (JSON answers only).
	Assertion string `json:"assertion,omitempty"`
	// AssertionVerified is true when the app checked the assertion
	// against the published keys (with --jwks-url); AssertionError says
	// why it did not verify.
	AssertionVerified bool   `json:"assertionVerified"`
	AssertionError    string `json:"assertionError,omitempty"`
	Method            string `json:"method"`
	Host              string `json:"host"`
	URI               string `json:"uri"`
	// FirstFactorUser is the X-Auth-Request-Email header nginx sets from
	// its basic authentication.
	FirstFactorUser string `json:"firstFactorUser"`
	// Authorization is true when the basic credentials reached the app
	// (they should not: nginx strips them).
	Authorization bool `json:"authorization"`
}

var page = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sample app</title>
<style>body{font-family:system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem;line-height:1.5}
dt{font-weight:600}dd{margin:0 0 .75rem 0;font-family:ui-monospace,monospace;word-break:break-all}</style></head>
<body><h1>Hello, {{if .User}}{{.User}}{{else}}stranger{{end}}</h1>
<p id="verdict">{{if .Multifactor}}You passed a second factor: <strong>{{.Multifactor}}</strong>.{{else}}No second factor was reported for this request.{{end}}</p>
<dl>
<dt>X-MFA-User</dt><dd id="user">{{.User}}</dd>
<dt>X-MFA-Multifactor</dt><dd id="multifactor">{{.Multifactor}}</dd>
<dt>X-MFA-Assertion</dt><dd id="assertion">{{if not .HasAssertion}}absent{{else if .AssertionVerified}}present, signature verified with the published keys{{else if .AssertionError}}present, not verified: {{.AssertionError}}{{else}}present{{end}}</dd>
<dt>Request</dt><dd>{{.Method}} {{.Host}}{{.URI}}</dd>
</dl></body></html>
`))

func whoami(r *http.Request) Whoami {
	return Whoami{
		User:            r.Header.Get("X-MFA-User"),
		Multifactor:     r.Header.Get("X-MFA-Multifactor"),
		HasAssertion:    r.Header.Get("X-MFA-Assertion") != "",
		Assertion:       r.Header.Get("X-MFA-Assertion"),
		Method:          r.Method,
		Host:            r.Host,
		URI:             r.RequestURI,
		FirstFactorUser: r.Header.Get("X-Auth-Request-Email"),
		Authorization:   r.Header.Get("Authorization") != "",
	}
}

func handler(v *assertionVerifier) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		who := whoami(r)
		if v != nil && who.HasAssertion {
			if _, err := v.verify(r.Context(), who.Assertion, r.Host); err != nil {
				who.AssertionError = err.Error()
			} else {
				who.AssertionVerified = true
			}
		}
		w.Header().Set("Cache-Control", "no-store")
		if r.Header.Get("Accept") == "application/json" {
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(who)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		if err := page.Execute(w, who); err != nil {
			log.Printf("rendering page: %v", err)
		}
	})
	return mux
}

func main() {
	listen := flag.String("listen", "127.0.0.1:8081", "address to listen on")
	jwksURL := flag.String("jwks-url", "", "the challenge server's /.well-known/jwks.json, to verify X-MFA-Assertion (empty: not verified)")
	pinPolicy := flag.String("policy", "", "the MFAPolicy (namespace/name) an assertion must name (empty: any policy of the challenge server)")
	flag.Parse()
	var v *assertionVerifier
	if *jwksURL != "" {
		v = newAssertionVerifier(*jwksURL, *pinPolicy)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	srv := &http.Server{
		Addr:              *listen,
		Handler:           handler(v),
		ReadHeaderTimeout: 5 * time.Second,
		MaxHeaderBytes:    32 << 10,
	}
	go func() {
		<-ctx.Done()
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdownCtx)
	}()
	log.Printf("sample app listening on %s", *listen)
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
}
