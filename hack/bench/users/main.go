// Command users measures mfa-operator with many enrolled users.
//
//	users populate -kubeconfig K -n 100000      write enrolment Secrets through internal/store
//	users pages -server URL -mode verify        drive the challenge pages over HTTP
//
// populate writes N enrolments straight through the store the challenge
// server uses (store.SecretStore.Update, the keyring read from the cluster
// seals each TOTP secret), concurrently, and reports how long it took. The
// TOTP secret of each user is derived from the user id and -seed, so pages
// can answer with a valid code without keeping 100,000 secrets.
//
// pages drives the challenge server like browsers behind a front door (the
// identity header, one X-Forwarded-For address per user, cookies and CSRF
// tokens kept per browser) and reports latency percentiles:
//
//	-mode verify   enrolled users answer a valid TOTP code
//	-mode enrol    new users open the enrolment page and confirm a first code
//	-mode lockout  enrolled users send -attempts wrong codes each
//
// Results are one line each on stdout, "RESULT key=value ...".
package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "populate":
		err = populateMain(os.Args[2:])
	case "pages":
		err = pagesMain(os.Args[2:])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "users %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: users populate|pages [flags] (-h for the flags)")
	os.Exit(2)
}

// defaultSeed derives the benchmark users' TOTP secrets; they protect
// nothing.
const defaultSeed = "mfa-operator bench users"

// userName is the id of the i-th benchmark user.
func userName(prefix string, i int) string { return fmt.Sprintf("%s%07d@example.com", prefix, i) }

// secretOf is the TOTP secret (SHA-1 size) of a benchmark user.
func secretOf(seed, user string) []byte {
	m := hmac.New(sha256.New, []byte(seed))
	m.Write([]byte(user))
	return m.Sum(nil)[:20]
}

// isWebAuthn says whether the i-th user holds a WebAuthn enrolment rather
// than a TOTP one.
func isWebAuthn(i, every int) bool { return every > 0 && i%every == every-1 }

// latencies collects durations and prints their percentiles.
type latencies []time.Duration

func (l latencies) percentile(p float64) time.Duration {
	if len(l) == 0 {
		return 0
	}
	s := slices.Clone(l)
	slices.Sort(s)
	i := int(math.Ceil(p/100*float64(len(s)))) - 1
	return s[max(i, 0)]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f", float64(d)/float64(time.Millisecond)) }

// result prints one RESULT line: kind, then key=value pairs in order.
func result(kind string, kv ...any) {
	var sb strings.Builder
	sb.WriteString("RESULT kind=" + kind)
	for i := 0; i+1 < len(kv); i += 2 {
		fmt.Fprintf(&sb, " %v=%v", kv[i], kv[i+1])
	}
	fmt.Println(sb.String())
}
