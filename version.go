package main

import (
	"runtime"
	"runtime/debug"
)

// version is set at build time: go build -ldflags "-X main.version=v1.2.3"
// (make build stamps the output of git describe).
var version = "devel"

// versionString is version, followed for an unstamped build by the commit
// the Go toolchain recorded (and "dirty" when the tree had changes), then
// the Go version and platform.
func versionString() string {
	v := version
	if info, ok := debug.ReadBuildInfo(); ok && v == "devel" {
		var rev, modified string
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				modified = s.Value
			}
		}
		if rev != "" {
			if len(rev) > 12 {
				rev = rev[:12]
			}
			v += " " + rev
			if modified == "true" {
				v += "-dirty"
			}
		}
	}
	return v + " (" + runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH + ")"
}
