package controllers

import (
	"fmt"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/mfa-operator/mfa-operator/internal/policy"
)

// nonRootUID is the distroless "nonroot" user.
const nonRootUID = 65532

// ChallengeGRPCPortName and ChallengeGRPCPort are the container port, and
// the Service port, of the Envoy ext_authz gRPC dialect (--grpc-addr):
// envoy.service.auth.v3.Authorization/Check and the gRPC health service.
// The name's "grpc-" prefix tells Istio the protocol.
const (
	ChallengeGRPCPortName = "grpc-authz"
	ChallengeGRPCPort     = 9001
)

// Labels of what the controller creates.
const (
	labelName      = "app.kubernetes.io/name"
	labelPartOf    = "app.kubernetes.io/part-of"
	labelManagedBy = "app.kubernetes.io/managed-by"
	labelComponent = "app.kubernetes.io/component"
	partOf         = "mfa-operator"
)

func labels(name, component string) map[string]string {
	return map[string]string{
		labelName:      name,
		labelPartOf:    partOf,
		labelManagedBy: ControllerName,
		labelComponent: component,
	}
}

// challengeSelector selects the challenge server's pods. It never changes:
// a Deployment's selector is immutable.
func challengeSelector() map[string]string {
	return map[string]string{labelName: ChallengeName, labelPartOf: partOf}
}

// ChallengeArgs are the challenge server's arguments: webhook mode and the
// settings it shares with the controller. The public URL is the resolved
// one, so the server and the policies' status.signinURL agree.
func ChallengeArgs(o Options) []string {
	args := []string{
		"webhook",
		"--namespace=" + o.Namespace,
		"--public-url=" + o.SigninBaseURL(),
		"--cookie-domain=" + o.CookieDomain,
		"--trusted-proxies=" + o.TrustedProxies,
		"--insecure-cookies=" + strconv.FormatBool(o.InsecureCookies),
		"--identity-headers=" + o.identityHeadersFlag(),
		"--trust-x-real-ip=" + strconv.FormatBool(o.TrustXRealIP),
		"--allow-ambiguous-paths=" + strconv.FormatBool(o.AmbiguousPaths),
		fmt.Sprintf("--metrics-addr=:%d", ChallengeMetricsPort),
		fmt.Sprintf("--grpc-addr=:%d", ChallengeGRPCPort),
	}
	if o.GeoIPDB != "" {
		args = append(args, "--geoip-db="+o.GeoIPDB)
	}
	return args
}

// challengeVolumes are the challenge container's volumes and mounts: /tmp,
// and the GeoIP databases' claim when there is one.
func challengeVolumes(o Options) ([]corev1.Volume, []corev1.VolumeMount) {
	vols := []corev1.Volume{{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
	mounts := []corev1.VolumeMount{{Name: "tmp", MountPath: "/tmp"}}
	if o.GeoIPVolumeClaim != "" {
		vols = append(vols, corev1.Volume{Name: "geoip", VolumeSource: corev1.VolumeSource{
			PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: o.GeoIPVolumeClaim, ReadOnly: true}}})
		mounts = append(mounts, corev1.VolumeMount{Name: "geoip", MountPath: GeoIPMountPath, ReadOnly: true})
	}
	return vols, mounts
}

// ChallengeDeployment is the challenge server's Deployment. Its pod
// template depends on the operator's settings only (image, arguments,
// environment), never on the bundle: the server follows the bundle Secret
// and reloads it live, and a pod that starts reads the bundle in force, so
// a policy edit rolls no pod (a roll would drop every pod's caches and its
// memory of used Duo pushes for nothing). A new image or flag does roll them.
func ChallengeDeployment(o Options) *appsv1.Deployment {
	image := o.WebhookImage
	if image == "" {
		image = DefaultWebhookImage
	}
	replicas := o.WebhookReplicas
	if replicas <= 0 {
		replicas = DefaultWebhookReplicas
	}
	podLabels := labels(ChallengeName, "challenge-server")
	vols, mounts := challengeVolumes(o)
	probe := func(path string, period int32) *corev1.Probe {
		return &corev1.Probe{
			ProbeHandler:     corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: path, Port: intstr.FromString(ChallengePortName)}},
			PeriodSeconds:    period,
			TimeoutSeconds:   2,
			SuccessThreshold: 1,
			FailureThreshold: 3,
		}
	}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: ChallengeName, Namespace: o.Namespace, Labels: podLabels},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: challengeSelector()},
			// The front door asks this server about every request: never
			// take a pod away before its replacement is ready.
			Strategy: appsv1.DeploymentStrategy{
				Type: appsv1.RollingUpdateDeploymentStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDeployment{
					MaxUnavailable: ptr.To(intstr.FromInt32(0)),
					MaxSurge:       ptr.To(intstr.FromInt32(1)),
				},
			},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{
					Labels: podLabels,
					Annotations: map[string]string{
						// For Prometheus' usual pod discovery.
						"prometheus.io/scrape": "true",
						"prometheus.io/port":   strconv.Itoa(ChallengeMetricsPort),
						"prometheus.io/path":   "/metrics",
					},
				},
				Spec: corev1.PodSpec{
					ServiceAccountName: ChallengeName,
					SecurityContext: &corev1.PodSecurityContext{
						RunAsNonRoot:   ptr.To(true),
						RunAsUser:      ptr.To[int64](nonRootUID),
						RunAsGroup:     ptr.To[int64](nonRootUID),
						SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
					},
					TopologySpreadConstraints: []corev1.TopologySpreadConstraint{{
						MaxSkew:           1,
						TopologyKey:       "kubernetes.io/hostname",
						WhenUnsatisfiable: corev1.ScheduleAnyway,
						LabelSelector:     &metav1.LabelSelector{MatchLabels: challengeSelector()},
					}},
					Containers: []corev1.Container{{
						Name:  "challenge",
						Image: image,
						Args:  ChallengeArgs(o),
						Ports: []corev1.ContainerPort{
							{Name: ChallengePortName, ContainerPort: ChallengePort, Protocol: corev1.ProtocolTCP},
							{Name: ChallengeMetricsPortName, ContainerPort: ChallengeMetricsPort, Protocol: corev1.ProtocolTCP},
							{Name: ChallengeGRPCPortName, ContainerPort: ChallengeGRPCPort, Protocol: corev1.ProtocolTCP},
						},
						// The Go runtime collects harder as the heap nears the
						// container's memory limit instead of being killed.
						Env: []corev1.EnvVar{{
							Name: "GOMEMLIMIT",
							ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{
								ContainerName: "challenge",
								Resource:      "limits.memory",
							}},
						}},
						Resources: corev1.ResourceRequirements{
							// The heap may grow by --gc-headroom (32Mi) between
							// garbage collections.
							Requests: corev1.ResourceList{
								corev1.ResourceCPU:    resource.MustParse("100m"),
								corev1.ResourceMemory: resource.MustParse("128Mi"),
							},
							// No CPU limit: throttling the auth hot path
							// would add latency to every protected request.
							Limits: corev1.ResourceList{
								corev1.ResourceMemory: resource.MustParse("256Mi"),
							},
						},
						ReadinessProbe: probe("/readyz", 5),
						LivenessProbe:  probe("/healthz", 10),
						SecurityContext: &corev1.SecurityContext{
							RunAsNonRoot:             ptr.To(true),
							RunAsUser:                ptr.To[int64](nonRootUID),
							RunAsGroup:               ptr.To[int64](nonRootUID),
							AllowPrivilegeEscalation: ptr.To(false),
							ReadOnlyRootFilesystem:   ptr.To(true),
							Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
							SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
						},
						VolumeMounts: mounts,
					}},
					Volumes: vols,
				},
			},
		},
	}
}

// ChallengeService is the challenge server's Service, the front doors'
// address: port 80 to the container's http port, and the ext_authz gRPC
// port (9001, grpc-authz). The metrics port is not on it.
func ChallengeService(o Options) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: ChallengeName, Namespace: o.Namespace, Labels: labels(ChallengeName, "challenge-server")},
		Spec: corev1.ServiceSpec{
			Type:     corev1.ServiceTypeClusterIP,
			Selector: challengeSelector(),
			Ports: []corev1.ServicePort{{
				Name:       ChallengePortName,
				Port:       80,
				TargetPort: intstr.FromString(ChallengePortName),
				Protocol:   corev1.ProtocolTCP,
			}, {
				Name:       ChallengeGRPCPortName,
				Port:       ChallengeGRPCPort,
				TargetPort: intstr.FromString(ChallengeGRPCPortName),
				Protocol:   corev1.ProtocolTCP,
			}},
		},
	}
}

// ChallengeDisruptionBudget lets a voluntary disruption (a node drain, a
// cluster upgrade) take at most one challenge pod at a time: every
// protected request waits for one, and the front door refuses requests
// when none answers. With one replica it blocks nothing.
func ChallengeDisruptionBudget(o Options) *policyv1.PodDisruptionBudget {
	return &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Name: ChallengeName, Namespace: o.Namespace, Labels: labels(ChallengeName, "challenge-server")},
		Spec: policyv1.PodDisruptionBudgetSpec{
			MaxUnavailable: ptr.To(intstr.FromInt32(1)),
			Selector:       &metav1.LabelSelector{MatchLabels: challengeSelector()},
		},
	}
}

// MergeDisruptionBudget brings existing to desired.
func MergeDisruptionBudget(existing, desired *policyv1.PodDisruptionBudget) {
	existing.Labels = mergeMaps(existing.Labels, desired.Labels)
	existing.Spec.MaxUnavailable = desired.Spec.MaxUnavailable
	existing.Spec.MinAvailable = nil
	existing.Spec.Selector = desired.Spec.Selector
}

// BundleSecret is the Secret holding the bundle's manifest and hash.
func BundleSecret(namespace string, manifest []byte, hash string) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: policy.BundleSecretName, Namespace: namespace, Labels: labels(ChallengeName, "bundle")},
		Type:       corev1.SecretTypeOpaque,
		Data:       map[string][]byte{policy.ManifestKey: manifest, policy.BundleHashKey: []byte(hash)},
	}
}

// ShardSecret is a bundle shard Secret: named after its content, and
// immutable, so that what a manifest names never changes under it.
func ShardSecret(namespace, name string, data []byte) *corev1.Secret {
	l := labels(ChallengeName, "bundle-shard")
	l[policy.ShardLabel] = "true"
	immutable := true
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace, Labels: l},
		Type:       corev1.SecretTypeOpaque,
		Immutable:  &immutable,
		Data:       map[string][]byte{policy.ShardKey: data},
	}
}

// KeyringSecret is the Secret holding the challenge server's keys.
//
// Like everything the controller makes, it has no owner reference: the
// keys encrypt the stored TOTP secrets and every cookie, so losing them to
// garbage collection would log everyone out and force every user to enrol
// again. The label finds it. A deleted keyring Secret is written back with
// the keys in force, never replaced by new ones (see ensureKeyring).
func KeyringSecret(namespace string, keyringJSON []byte) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: policy.KeyringSecretName, Namespace: namespace, Labels: labels(ChallengeName, "keyring")},
		Type:       corev1.SecretTypeOpaque,
		Data:       map[string][]byte{policy.KeyringKey: keyringJSON},
	}
}

// legacyBundleHashAnnotation is the pod template annotation by which
// earlier versions rolled the challenge pods at every bundle change.
const legacyBundleHashAnnotation = "mfa.operator.dev/bundle-hash"

// MergeDeployment brings existing (as read from the API server) to desired
// while keeping what the API server defaulted and what others added: the
// pod template is replaced only when a field desired sets differs, so an
// unchanged Deployment is not written at all. The bundle-hash annotation of
// earlier versions is removed (one roll, at the upgrade that usually
// brings a new image anyway); it would otherwise stay, stale, for ever.
func MergeDeployment(existing, desired *appsv1.Deployment) {
	existing.Labels = mergeMaps(existing.Labels, desired.Labels)
	existing.Spec.Replicas = desired.Spec.Replicas
	if existing.Spec.Selector == nil {
		existing.Spec.Selector = desired.Spec.Selector
	}
	if !equality.Semantic.DeepDerivative(desired.Spec.Strategy, existing.Spec.Strategy) {
		existing.Spec.Strategy = desired.Spec.Strategy
	}
	if templateDiffers(&desired.Spec.Template, &existing.Spec.Template) {
		// Annotations others put on the template (kubectl rollout
		// restart's restartedAt) stay.
		others := existing.Spec.Template.Annotations
		existing.Spec.Template = *desired.Spec.Template.DeepCopy()
		for k, v := range others {
			if _, set := existing.Spec.Template.Annotations[k]; !set {
				if existing.Spec.Template.Annotations == nil {
					existing.Spec.Template.Annotations = map[string]string{}
				}
				existing.Spec.Template.Annotations[k] = v
			}
		}
	}
	delete(existing.Spec.Template.Annotations, legacyBundleHashAnnotation)
}

// templateDiffers says whether existing lacks something desired sets.
// DeepDerivative ignores what desired leaves unset (API server defaults)
// but compares lists only up to desired's length, so the lengths of the
// lists the controller owns are compared too.
func templateDiffers(desired, existing *corev1.PodTemplateSpec) bool {
	if !equality.Semantic.DeepDerivative(*desired, *existing) {
		return true
	}
	if len(desired.Spec.Containers) != len(existing.Spec.Containers) || len(desired.Spec.Volumes) != len(existing.Spec.Volumes) {
		return true
	}
	for i := range desired.Spec.Containers {
		d, e := &desired.Spec.Containers[i], &existing.Spec.Containers[i]
		if len(d.Args) != len(e.Args) || len(d.Env) != len(e.Env) || len(d.Ports) != len(e.Ports) || len(d.VolumeMounts) != len(e.VolumeMounts) {
			return true
		}
	}
	return false
}

// MergeService brings existing to desired, keeping what the API server
// allocated (cluster IPs) and defaulted.
func MergeService(existing, desired *corev1.Service) {
	existing.Labels = mergeMaps(existing.Labels, desired.Labels)
	existing.Spec.Type = desired.Spec.Type
	existing.Spec.Selector = desired.Spec.Selector
	if !equality.Semantic.DeepDerivative(desired.Spec.Ports, existing.Spec.Ports) || len(existing.Spec.Ports) != len(desired.Spec.Ports) {
		existing.Spec.Ports = desired.Spec.Ports
	}
}

func mergeMaps(base, over map[string]string) map[string]string {
	out := make(map[string]string, len(base)+len(over))
	for k, v := range base {
		out[k] = v
	}
	for k, v := range over {
		out[k] = v
	}
	return out
}
