package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/mfa-operator/mfa-operator/internal/keyring"
	"github.com/mfa-operator/mfa-operator/internal/policy"
	"github.com/mfa-operator/mfa-operator/internal/store"
	"github.com/mfa-operator/mfa-operator/internal/totp"
)

type populateOptions struct {
	n, workers, webauthnEvery int
	namespace, provider       string
	webauthnProvider          string
	prefix, seed              string
}

func populateMain(args []string) error {
	fs := flag.NewFlagSet("populate", flag.ExitOnError)
	kubeconfig := fs.String("kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig of the API server")
	o := populateOptions{}
	fs.IntVar(&o.n, "n", 100000, "enrolments to write (users 0 to n-1)")
	fs.IntVar(&o.workers, "workers", 32, "concurrent writers")
	fs.StringVar(&o.namespace, "namespace", "mfa-system", "namespace of the challenge server (the keyring and the enrolment Secrets)")
	fs.StringVar(&o.provider, "provider", "apps/google-authenticator", "TOTP MFAProvider (namespace/name) of the enrolments")
	fs.StringVar(&o.webauthnProvider, "webauthn-provider", "apps/passkeys", "WebAuthn MFAProvider (namespace/name) of the WebAuthn enrolments")
	fs.IntVar(&o.webauthnEvery, "webauthn-every", 10, "every Nth user holds a WebAuthn key instead of a TOTP secret (0: none)")
	fs.StringVar(&o.prefix, "prefix", "user-", "user id prefix")
	fs.StringVar(&o.seed, "seed", defaultSeed, "seed of the users' TOTP secrets")
	timeout := fs.Duration("timeout", 60*time.Minute, "give up after this long")
	_ = fs.Parse(args)
	log.SetLogger(logr.Discard())

	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	cfg, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		return fmt.Errorf("reading kubeconfig %q: %w", *kubeconfig, err)
	}
	// The writes are what is measured, not client-side throttling.
	cfg.QPS, cfg.Burst = 5000, 10000
	scheme := runtime.NewScheme()
	if err := corev1.AddToScheme(scheme); err != nil {
		return err
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return err
	}
	kr, err := readKeyring(ctx, c, o.namespace)
	if err != nil {
		return err
	}
	return populate(ctx, store.NewSecretStore(c, o.namespace), kr, o)
}

// readKeyring waits for the keyring Secret the controller writes and
// parses it: the challenge server opens the stored secrets with it.
func readKeyring(ctx context.Context, c client.Client, namespace string) (*keyring.Keyring, error) {
	for {
		var s corev1.Secret
		err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: policy.KeyringSecretName}, &s)
		if err == nil {
			return keyring.Parse(s.Data[policy.KeyringKey])
		}
		if !apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("reading Secret %s/%s: %w", namespace, policy.KeyringSecretName, err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("Secret %s/%s did not appear (is the controller running?): %w", namespace, policy.KeyringSecretName, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func populate(ctx context.Context, st *store.SecretStore, kr *keyring.Keyring, o populateOptions) error {
	var next, done, totpN, webauthnN, failed atomic.Int64
	var firstErr error
	var errOnce sync.Once
	start := time.Now()
	stop := make(chan struct{})
	go func() {
		t := time.NewTicker(10 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				d := done.Load()
				fmt.Fprintf(os.Stderr, "populate: %d of %d after %s (%.0f/s)\n", d, o.n, time.Since(start).Round(time.Second), float64(d)/time.Since(start).Seconds())
			}
		}
	}()
	var wg sync.WaitGroup
	for range o.workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= o.n || ctx.Err() != nil {
					return
				}
				webauthn := isWebAuthn(i, o.webauthnEvery)
				err := enrol(ctx, st, kr, o, i, webauthn)
				done.Add(1)
				switch {
				case err != nil:
					failed.Add(1)
					errOnce.Do(func() { firstErr = err })
				case webauthn:
					webauthnN.Add(1)
				default:
					totpN.Add(1)
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	elapsed := time.Since(start)
	result("populate", "users", done.Load(), "totp", totpN.Load(), "webauthn", webauthnN.Load(), "errors", failed.Load(),
		"workers", o.workers, "seconds", fmt.Sprintf("%.1f", elapsed.Seconds()),
		"per_s", fmt.Sprintf("%.0f", float64(done.Load())/elapsed.Seconds()))
	if firstErr != nil {
		return fmt.Errorf("%d enrolments failed, the first: %w", failed.Load(), firstErr)
	}
	if done.Load() < int64(o.n) {
		return errors.New("stopped before every enrolment was written")
	}
	return nil
}

// enrol writes the i-th user's enrolment through the store, as a
// confirmation on the challenge pages would: a TOTP secret sealed with the
// keyring and ten recovery code hashes, or one WebAuthn key. A user who
// already holds one is left as is, so a second run completes a first.
func enrol(ctx context.Context, st *store.SecretStore, kr *keyring.Keyring, o populateOptions, i int, webauthn bool) error {
	user := userName(o.prefix, i)
	now := time.Now().UTC()
	if webauthn {
		_, err := st.Update(ctx, store.Key{Provider: o.webauthnProvider, User: user}, func(e *store.Enrollment) error {
			if e.WebAuthn != nil {
				return nil
			}
			handle, id, pub := random(32), random(32), random(77) // the sizes of a P-256 passkey
			e.WebAuthn = &store.WebAuthnEnrollment{UserHandle: handle, Credentials: []store.WebAuthnCredential{{
				ID: id, PublicKey: pub, AAGUID: make([]byte, 16), Transports: []string{"internal", "hybrid"},
				AttestationType: "none", AttestationFormat: "none", UserPresent: true, UserVerified: true,
				BackupEligible: true, BackupState: true, Name: "passkey", Created: now,
			}}}
			return nil
		})
		return err
	}
	_, hashes, err := totp.NewRecoveryCodes(totp.RecoveryCodeCount)
	if err != nil {
		return err
	}
	_, err = st.Update(ctx, store.Key{Provider: o.provider, User: user}, func(e *store.Enrollment) error {
		if e.TOTP != nil {
			return nil
		}
		e.TOTP = &store.TOTPEnrollment{
			SealedSecret: kr.Seal(keyring.PurposeStore, secretOf(o.seed, user), []byte(user)),
			Digits:       6, PeriodSeconds: 30, Algorithm: "SHA1", Skew: 1, Created: now,
		}
		e.RecoveryCodeHashes = hashes
		return nil
	})
	return err
}

func random(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}
