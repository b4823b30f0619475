package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/config"

	"github.com/mfa-operator/mfa-operator/internal/source"
	"github.com/mfa-operator/mfa-operator/internal/store"
	"github.com/mfa-operator/mfa-operator/internal/totp"
	"github.com/mfa-operator/mfa-operator/webhook"
)

// runWebhook runs the challenge server until ctx is cancelled (SIGINT,
// SIGTERM). With --config-dir it is standalone (objects from files, a file
// store); otherwise it reads its bundle and keyring Secrets from the
// cluster and keeps enrolments in Secrets.
func runWebhook(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("webhook", flag.ContinueOnError)
	common := addCommonFlags(fs)
	listen := stringFlag(fs, "listen", ":8080", "address to serve the auth endpoints and the pages on")
	metricsAddr := stringFlag(fs, "metrics-addr", ":9090", "address to serve Prometheus metrics (/metrics) on, apart from --listen (0 or empty: none)")
	configDir := stringFlag(fs, "config-dir", "", "standalone mode: directory of MFAPolicy, MFAProvider and Secret YAML/JSON files, reloaded on change")
	dataDir := stringFlag(fs, "data-dir", "mfa-data", "standalone mode: directory of the keyring (keyring.json, generated when absent) and the enrolment store (enrollments.db)")
	maxFailures := stringFlag(fs, "lockout-max-failures", "5", "failed second-factor attempts within --lockout-window that lock a user out")
	window := stringFlag(fs, "lockout-window", "5m", "window in which failed attempts are counted")
	duration := stringFlag(fs, "lockout-duration", "5m", "how long a user stays locked out")
	logLevel := stringFlag(fs, "log-level", "info", "debug, info, warn or error")
	gcHeadroom := stringFlag(fs, "gc-headroom", "32Mi", "heap growth allowed between garbage collections while the live heap is small: more memory, less CPU per request (0: Go's default; an explicit GOGC wins)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}

	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("--log-level %q: use debug, info, warn or error", *logLevel)
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	slog.SetDefault(log)

	proxies, err := parsePrefixes(*common.trustedProxies)
	if err != nil {
		return err
	}
	identityHeaders, err := common.identityHeaders()
	if err != nil {
		return err
	}
	lockout, err := parseLockout(*maxFailures, *window, *duration)
	if err != nil {
		return err
	}
	headroom, err := resource.ParseQuantity(*gcHeadroom)
	if err != nil || headroom.Sign() < 0 {
		return fmt.Errorf("--gc-headroom %q: want a size, e.g. 32Mi, or 0", *gcHeadroom)
	}
	opts := webhook.Options{
		PublicURL:           *common.publicURL,
		CookieDomain:        *common.cookieDomain,
		TrustedProxies:      proxies,
		InsecureCookies:     *common.insecureCookie,
		IdentityHeaders:     identityHeaders,
		TrustXRealIP:        *common.trustXRealIP,
		AllowAmbiguousPaths: *common.ambiguousPaths,
		ListenAddr:          *listen,
		MetricsAddr:         *metricsAddr,
		Logger:              log,
		Lockout:             lockout,
		GCHeadroom:          uint64(headroom.Value()),
	}

	// The configuration's source and the enrolment store are chosen here,
	// once: files in standalone mode, Secrets in a cluster.
	if *configDir != "" {
		if err := os.MkdirAll(*dataDir, 0o700); err != nil {
			return fmt.Errorf("--data-dir: %w", err)
		}
		fstore, err := store.NewFileStore(filepath.Join(*dataDir, "enrollments.db"))
		if err != nil {
			return fmt.Errorf("opening the enrolment store in --data-dir %s: %w", *dataDir, err)
		}
		defer fstore.Close()
		opts.Store = fstore
		opts.Source = &source.Dir{ConfigDir: *configDir, DataDir: *dataDir, IdentityHeaders: identityHeaders, Log: log}
		log.Info("standalone mode", "configDir", *configDir, "dataDir", *dataDir)
	} else {
		cfg, err := config.GetConfig()
		if err != nil {
			return fmt.Errorf("no cluster configuration (and no --config-dir for standalone mode): %w", err)
		}
		scheme := runtime.NewScheme()
		if err := corev1.AddToScheme(scheme); err != nil {
			return err
		}
		c, err := client.NewWithWatch(cfg, client.Options{Scheme: scheme})
		if err != nil {
			return fmt.Errorf("building the cluster client: %w", err)
		}
		namespace := *common.namespace
		opts.Store = store.NewSecretStore(c, namespace)
		opts.Source = &source.Cluster{Client: c, Namespace: namespace, Log: log}
		log.Info("cluster mode", "namespace", namespace)
	}

	srv, err := webhook.NewServer(opts)
	if err != nil {
		return err
	}
	return srv.Run(ctx)
}

// parsePrefixes reads comma-separated CIDRs (or single addresses).
func parsePrefixes(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		if !strings.Contains(part, "/") {
			a, err := netip.ParseAddr(part)
			if err != nil {
				return nil, fmt.Errorf("--trusted-proxies: %q is not a CIDR or an address", part)
			}
			out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(part)
		if err != nil {
			return nil, fmt.Errorf("--trusted-proxies: %q is not a CIDR, e.g. 10.0.0.0/8", part)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

func parseLockout(maxFailures, window, duration string) (totp.Lockout, error) {
	n, err := strconv.Atoi(maxFailures)
	if err != nil || n < 1 {
		return totp.Lockout{}, fmt.Errorf("--lockout-max-failures %q: want a positive number", maxFailures)
	}
	w, err := time.ParseDuration(window)
	if err != nil || w <= 0 {
		return totp.Lockout{}, fmt.Errorf("--lockout-window %q: want a positive duration, e.g. 5m", window)
	}
	d, err := time.ParseDuration(duration)
	if err != nil || d <= 0 {
		return totp.Lockout{}, fmt.Errorf("--lockout-duration %q: want a positive duration, e.g. 5m", duration)
	}
	return totp.Lockout{MaxFailures: n, Window: w, Duration: d}, nil
}
