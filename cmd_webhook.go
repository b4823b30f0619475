package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mfa-operator/mfa-operator/internal/geoip"
	"github.com/mfa-operator/mfa-operator/internal/revocation"
	"github.com/mfa-operator/mfa-operator/internal/source"
	"github.com/mfa-operator/mfa-operator/internal/store"
	"github.com/mfa-operator/mfa-operator/internal/totp"
	"github.com/mfa-operator/mfa-operator/webhook"
)

// webhookFlags are the flags of `mfa-operator webhook`.
type webhookFlags struct {
	cmd         *cmdFlags
	common      *commonFlags
	listen      *string
	grpcAddr    *string
	metricsAddr *string
	configDir   *string
	dataDir     *string
	maxFailures *int
	window      *time.Duration
	duration    *time.Duration
	logLevel    *slog.Level
	gcHeadroom  *resource.Quantity
}

func newWebhookFlags() *webhookFlags {
	c := newCmdFlags("webhook")
	f := &webhookFlags{cmd: c}
	c.section(groupFrontDoor)
	f.listen = c.String("listen", "ADDR", "", "address to serve on (default :8080 in a cluster, 127.0.0.1:8080 standalone)")
	f.grpcAddr = c.String("grpc-addr", "ADDR", ":9001", "address to serve the Envoy ext_authz gRPC dialect (envoy.service.auth.v3.Authorization/Check) and the gRPC health service on, apart from --listen (0 or empty: none)")
	f.common = addCommonFlags(c)
	c.section(groupCluster)
	c.Kubeconfig()
	c.section(groupStore)
	f.configDir = c.String("config-dir", "DIR", "", "directory of MFAPolicy, MFAProvider and Secret YAML/JSON files, reloaded on change (objects without a namespace are in \"default\"); set, the server runs without a cluster")
	f.dataDir = c.String("data-dir", "DIR", "mfa-data", "directory of the keyring (keyring.json, generated when absent) and the enrolment store (enrollments.db)")
	c.section(groupLockout)
	f.maxFailures = c.Int("lockout-max-failures", 5, 1, "failed second-factor attempts within --lockout-window that lock a user out")
	f.window = c.Duration("lockout-window", 5*time.Minute, "window in which failed attempts are counted")
	f.duration = c.Duration("lockout-duration", 5*time.Minute, "how long a user stays locked out the first time (longer for each lockout that follows)")
	c.section(groupObservability)
	f.metricsAddr = c.String("metrics-addr", "ADDR", ":9090", "address to serve Prometheus metrics (/metrics) on, apart from --listen (0 or empty: none)")
	f.logLevel = c.LogLevel()
	c.section(groupRuntime)
	f.gcHeadroom = c.Size("gc-headroom", "32Mi", "heap growth allowed between garbage collections while the live heap is small: more memory, less CPU per request (0: Go's default; an explicit GOGC wins)")
	return f
}

func parseWebhookFlags(args []string) (*webhookFlags, error) {
	f := newWebhookFlags()
	if err := f.cmd.parse(args); err != nil {
		return nil, badUsage(err)
	}
	if err := f.common.validate(); err != nil {
		return nil, badUsage(err)
	}
	if *f.listen == "" {
		// Standalone, the server is usually next to its front door; in a
		// cluster the Service reaches it on the pod's address.
		*f.listen = ":8080"
		if *f.configDir != "" {
			*f.listen = "127.0.0.1:8080"
		}
	}
	return f, nil
}

// runWebhook runs the challenge server until ctx is cancelled (SIGINT,
// SIGTERM). With --config-dir it is standalone (objects from files, a file
// store); otherwise it reads its bundle and keyring Secrets from the
// cluster and keeps enrolments in Secrets.
func runWebhook(ctx context.Context, args []string) error {
	f, err := parseWebhookFlags(args)
	if err != nil {
		return err
	}
	common := f.common
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: *f.logLevel}))
	slog.SetDefault(log)

	proxies, err := parsePrefixes(*common.trustedProxies)
	if err != nil {
		return err
	}
	identityHeaders, err := common.identityHeaders()
	if err != nil {
		return err
	}
	lockout := totp.Lockout{MaxFailures: *f.maxFailures, Window: *f.window, Duration: *f.duration}
	opts := webhook.Options{
		PublicURL:           *common.publicURL,
		CookieDomain:        *common.cookieDomain,
		TrustedProxies:      proxies,
		InsecureCookies:     *common.insecureCookie,
		IdentityHeaders:     identityHeaders,
		TrustXRealIP:        *common.trustXRealIP,
		AllowAmbiguousPaths: *common.ambiguousPaths,
		ListenAddr:          *f.listen,
		GRPCAddr:            *f.grpcAddr,
		MetricsAddr:         *f.metricsAddr,
		Logger:              log,
		Lockout:             lockout,
		GCHeadroom:          uint64(f.gcHeadroom.Value()),
	}

	if paths := geoip.ParsePaths(*common.geoipDB); len(paths) > 0 {
		db, err := geoip.Open(paths, log)
		if err != nil {
			return fmt.Errorf("--geoip-db: %w", err)
		}
		go db.Watch(ctx, geoip.DefaultReloadInterval)
		opts.GeoIP = db
		log.Info("GeoIP database loaded", "paths", strings.Join(paths, ","))
	}

	// The configuration's source and the enrolment store are chosen here,
	// once: files in standalone mode, Secrets in a cluster.
	if configDir, dataDir := *f.configDir, *f.dataDir; configDir != "" {
		if err := os.MkdirAll(dataDir, 0o700); err != nil {
			return fmt.Errorf("--data-dir: %w", err)
		}
		fstore, err := store.NewFileStore(filepath.Join(dataDir, "enrollments.db"))
		if err != nil {
			return fmt.Errorf("opening the enrolment store in --data-dir %s: %w", dataDir, err)
		}
		defer fstore.Close()
		opts.Store = fstore
		opts.Source = &source.Dir{ConfigDir: configDir, DataDir: dataDir, IdentityHeaders: identityHeaders, GeoIP: opts.GeoIP != nil, Log: log}
		opts.Revocations = revocation.NewFileStore(dataDir, log)
		log.Info("standalone mode", "configDir", configDir, "dataDir", dataDir)
	} else {
		cfg, err := clusterConfig("webhook")
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
		opts.Revocations = &revocation.ClusterStore{Client: c, Namespace: namespace, Log: log}
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
