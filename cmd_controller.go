package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client/config"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/mfa-operator/mfa-operator/api/v1alpha1"
	"github.com/mfa-operator/mfa-operator/controllers"
)

// controllerFlags are the flags of `mfa-operator controller`.
type controllerFlags struct {
	common           *commonFlags
	webhookReplicas  *int
	webhookImage     *string
	manageDeployment *bool
	metricsAddr      *string
	probeAddr        *string
	leaderElect      *bool
	logLevel         *string
}

func parseControllerFlags(args []string) (*controllerFlags, error) {
	fs := flag.NewFlagSet("mfa-operator controller", flag.ContinueOnError)
	replicas, err := intFlag(fs, "webhook-replicas", controllers.DefaultWebhookReplicas, "replicas of the challenge server Deployment")
	if err != nil {
		return nil, err
	}
	f := &controllerFlags{
		common:           addCommonFlags(fs),
		webhookReplicas:  replicas,
		webhookImage:     stringFlag(fs, "webhook-image", controllers.DefaultWebhookImage, "image of the challenge server (the operator's own image)"),
		manageDeployment: boolFlag(fs, "manage-deployment", true, "run the challenge server as a Deployment and Service; false when it runs elsewhere (a local process)"),
		metricsAddr:      stringFlag(fs, "metrics-bind-address", "0", "address of the metrics endpoint, e.g. :8080 (0 disables it)"),
		probeAddr:        stringFlag(fs, "health-probe-bind-address", ":8081", "address of the /healthz and /readyz endpoints"),
		leaderElect:      boolFlag(fs, "leader-elect", false, "elect a leader, so that only one replica of the controller works at a time"),
		logLevel:         stringFlag(fs, "log-level", "info", "debug, info, warn or error"),
	}
	config.RegisterFlags(fs) // --kubeconfig
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *f.webhookReplicas < 1 {
		return nil, fmt.Errorf("--webhook-replicas must be at least 1, got %d", *f.webhookReplicas)
	}
	if *f.common.namespace == "" {
		return nil, errors.New("--namespace must not be empty")
	}
	if _, err := f.common.identityHeaders(); err != nil {
		return nil, err
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
	}
}

// must returns v of a call whose error was already checked.
func must[T any](v T, _ error) T { return v }

func runController(ctx context.Context, args []string) error {
	f, err := parseControllerFlags(args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*f.logLevel)); err != nil {
		return fmt.Errorf("--log-level %q: use debug, info, warn or error", *f.logLevel)
	}
	// JSON lines through slog, as the challenge server logs.
	logger := logr.FromSlogHandler(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
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
	cfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("finding the cluster (--kubeconfig, KUBECONFIG or in-cluster): %w", err)
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                  scheme,
		Cache:                   controllers.CacheOptions(opts),
		Metrics:                 metricsserver.Options{BindAddress: *f.metricsAddr},
		HealthProbeBindAddress:  *f.probeAddr,
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
		"signinBaseURL", opts.SigninBaseURL(), "manageDeployment", opts.ManageDeployment, "webhookImage", opts.WebhookImage)
	return mgr.Start(ctx)
}

// intFlag declares an int flag whose default may come from the environment.
func intFlag(fs *flag.FlagSet, name string, def int, usage string) (*int, error) {
	env := "MFA_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
	v, err := strconv.Atoi(envOr(name, strconv.Itoa(def)))
	if err != nil {
		return nil, fmt.Errorf("%s must be a whole number: %w", env, err)
	}
	return fs.Int(name, v, usage+" (env "+env+")"), nil
}
