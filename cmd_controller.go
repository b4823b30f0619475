package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/mfa-operator/mfa-operator/api/v1alpha1"
	"github.com/mfa-operator/mfa-operator/controllers"
	"github.com/mfa-operator/mfa-operator/internal/geoip"
	"github.com/mfa-operator/mfa-operator/internal/version"
)

// controllerFlags are the flags of `mfa-operator controller`.
type controllerFlags struct {
	cmd              *cmdFlags
	common           *commonFlags
	webhookReplicas  *int
	webhookImage     *string
	geoipClaim       *string
	manageDeployment *bool
	metricsAddr      *string
	probeAddr        *string
	pprofAddr        *string
	leaderElect      *bool
	logLevel         *slog.Level
}

func newControllerFlags() *controllerFlags {
	c := newCmdFlags("controller")
	f := &controllerFlags{cmd: c, common: addCommonFlags(c)}
	c.section(groupCluster)
	c.Kubeconfig()
	f.leaderElect = c.Bool("leader-elect", false, "elect a leader, so that only one replica of the controller works at a time")
	c.section(groupChallenge)
	f.manageDeployment = c.Bool("manage-deployment", true, "run the challenge server as a Deployment and Service; false when it runs elsewhere (a local process)")
	f.webhookImage = c.String("webhook-image", "IMAGE", controllers.DefaultWebhookImage, "image of the challenge server (the operator's own image)")
	f.geoipClaim = c.String("geoip-volume-claim", "NAME", "", "PersistentVolumeClaim of --namespace holding the GeoIP databases, mounted read-only at "+
		controllers.GeoIPMountPath+" in the challenge server's pods (then --geoip-db="+controllers.GeoIPMountPath+"/GeoLite2-Country.mmdb,...)")
	f.webhookReplicas = c.Int("webhook-replicas", controllers.DefaultWebhookReplicas, 1, "replicas of the challenge server Deployment")
	c.section(groupObservability)
	f.logLevel = c.LogLevel()
	f.metricsAddr = c.String("metrics-bind-address", "ADDR", "0", "address of the metrics endpoint, e.g. :8080 (0 disables it)")
	f.probeAddr = c.String("health-probe-bind-address", "ADDR", ":8081", "address of the /healthz and /readyz endpoints")
	f.pprofAddr = c.String("pprof-bind-address", "ADDR", "0", "address of Go's /debug/pprof profiles, e.g. 127.0.0.1:6060 (0 disables it); for measuring, not for production")
	return f
}

func parseControllerFlags(args []string) (*controllerFlags, error) {
	f := newControllerFlags()
	if err := f.cmd.parse(args); err != nil {
		return nil, badUsage(err)
	}
	if err := f.common.validate(); err != nil {
		return nil, badUsage(err)
	}
	if *f.manageDeployment && *f.common.publicURL == "" && *f.common.cookieDomain == "" {
		// Derived, the sign-in URL would be the in-cluster Service, which
		// browsers do not reach: every challenge would be a dead end.
		return nil, badUsage(errors.New("--public-url is required (MFA_PUBLIC_URL is empty or unset): the external URL of the challenge pages, " +
			"where the front door sends browsers, e.g. --public-url=https://auth.example.com (--cookie-domain=example.com alone means https://auth.example.com)"))
	}
	return f, nil
}

func (f *controllerFlags) options() controllers.Options {
	return controllers.Options{
		Namespace:        *f.common.namespace,
		PublicURL:        *f.common.publicURL,
		CookieDomain:     *f.common.cookieDomain,
		TrustedProxies:   *f.common.trustedProxies,
		InsecureCookies:  *f.common.insecureCookie,
		IdentityHeaders:  must(f.common.identityHeaders()),
		TrustXRealIP:     *f.common.trustXRealIP,
		AmbiguousPaths:   *f.common.ambiguousPaths,
		WebhookImage:     *f.webhookImage,
		WebhookReplicas:  int32(*f.webhookReplicas),
		ManageDeployment: *f.manageDeployment,
		GeoIPDB:          strings.Join(geoip.ParsePaths(*f.common.geoipDB), ","),
		GeoIPVolumeClaim: *f.geoipClaim,
	}
}

// must returns v of a call whose error was already checked.
func must[T any](v T, _ error) T { return v }

func runController(ctx context.Context, args []string) error {
	f, err := parseControllerFlags(args)
	if err != nil {
		return err
	}
	// JSON lines through slog, as the challenge server logs.
	logger := logr.FromSlogHandler(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: *f.logLevel}))
	ctrl.SetLogger(logger)
	klog.SetLogger(logger) // client-go and leader election log through klog
	opts := f.options()

	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return err
	}
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		return err
	}
	cfg, err := clusterConfig("controller")
	if err != nil {
		return fmt.Errorf("finding the cluster (--kubeconfig, else KUBECONFIG, else in-cluster, else ~/.kube/config): %w", err)
	}
	// The build serves its own version on /metrics.
	if err := ctrlmetrics.Registry.Register(version.Collector()); err != nil {
		return err
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                  scheme,
		Cache:                   controllers.CacheOptions(opts),
		Metrics:                 metricsserver.Options{BindAddress: *f.metricsAddr},
		HealthProbeBindAddress:  *f.probeAddr,
		PprofBindAddress:        *f.pprofAddr,
		LeaderElection:          *f.leaderElect,
		LeaderElectionID:        "mfa-operator.mfa.operator.dev",
		LeaderElectionNamespace: opts.Namespace,
		// The process exits right after the manager stops; releasing the
		// lease then lets the next leader start at once.
		LeaderElectionReleaseOnCancel: true,
	})
	if err != nil {
		return fmt.Errorf("creating the manager: %w", err)
	}
	if err := controllers.Setup(ctx, mgr, opts, controllers.CheckDuoCredentials); err != nil {
		return fmt.Errorf("setting up the controllers: %w", err)
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return err
	}
	ctrl.Log.WithName("setup").Info("starting the controller", "namespace", opts.Namespace,
		"version", version.Version, "signinBaseURL", opts.SigninBaseURL(), "manageDeployment", opts.ManageDeployment, "webhookImage", opts.WebhookImage)
	return mgr.Start(ctx)
}
