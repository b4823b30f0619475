// Package version is what a build of mfa-operator says it is: the
// version and source revision stamped at build time, as `mfa-operator
// version`, the build info gauge of both /metrics endpoints and the
// User-Agent towards Duo and the API server report them.
//
// make build, make release and the Dockerfile stamp both with
//
//	go build -ldflags "-X github.com/mfa-operator/mfa-operator/internal/version.Version=v1.2.3
//	  -X github.com/mfa-operator/mfa-operator/internal/version.Revision=<commit>"
package version

import (
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// Version is the release (v1.2.3) or git describe of the build; "devel"
// when nothing stamped it.
var Version = "devel"

// Revision is the commit the build was made from; when nothing stamped
// it, the one the Go toolchain recorded, if any.
var Revision = ""

// revision returns Revision, else the VCS revision and "-dirty" mark
// the Go toolchain recorded (builds without -buildvcs=false).
func revision() string {
	if Revision != "" {
		return Revision
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	var rev, modified string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value
		}
	}
	if rev != "" && modified == "true" {
		rev += "-dirty"
	}
	return rev
}

// String is the version, the short revision when known, then the Go
// version and platform: "v1.2.3 0123456789ab (go1.26.8 linux/amd64)".
func String() string {
	v := Version
	if rev := revision(); rev != "" {
		short, dirty := strings.CutSuffix(rev, "-dirty")
		if len(short) > 12 {
			short = short[:12]
		}
		if dirty {
			short += "-dirty"
		}
		v += " " + short
	}
	return v + " (" + runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH + ")"
}

// Product is an HTTP product token, "name/version" (RFC 9110, section
// 10.1.5); characters a token may not hold in Version become "-".
func Product(name string) string {
	return name + "/" + strings.Map(tokenChar, Version)
}

func tokenChar(r rune) rune {
	switch {
	case 'a' <= r && r <= 'z', 'A' <= r && r <= 'Z', '0' <= r && r <= '9':
		return r
	case strings.ContainsRune("!#$%&'*+-.^_`|~", r):
		return r
	}
	return '-'
}

// UserAgent is the User-Agent of the requests a mode (controller,
// webhook) sends to the API server, in client-go's form:
// "mfa-operator/v1.2.3 (linux/amd64) controller".
func UserAgent(mode string) string {
	return Product("mfa-operator") + " (" + runtime.GOOS + "/" + runtime.GOARCH + ") " + mode
}

// Collector is the gauge mfa_operator_build_info, always 1, whose labels
// say which build serves the metrics.
func Collector() prometheus.Collector {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "mfa_operator_build_info",
		Help: "The build of mfa-operator that serves these metrics: version, source revision and Go version; always 1.",
		ConstLabels: prometheus.Labels{
			"version":   Version,
			"revision":  revision(),
			"goversion": runtime.Version(),
		},
	})
	g.Set(1)
	return g
}
