package main

import (
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client/config"

	"github.com/mfa-operator/mfa-operator/internal/version"
)

// clusterConfig finds the cluster as both modes do (--kubeconfig, else
// KUBECONFIG, else the pod's service account, else ~/.kube/config) and
// names the build and the mode in the User-Agent of every request to the
// API server, e.g. "mfa-operator/v1.2.3 (linux/amd64) controller", so
// that audit logs and API priority tell the modes and versions apart.
func clusterConfig(mode string) (*rest.Config, error) {
	cfg, err := config.GetConfig()
	if err != nil {
		return nil, err
	}
	cfg.UserAgent = version.UserAgent(mode)
	return cfg, nil
}
