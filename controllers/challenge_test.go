package controllers_test

import (
	"testing"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/mfa-operator/mfa-operator/controllers"
)

func TestChallengeDeployment(t *testing.T) {
	base := controllers.Options{Namespace: "mfa-system", PublicURL: "https://auth.example.com", CookieDomain: "example.com",
		TrustedProxies: "10.0.0.0/8,192.168.0.0/16", WebhookImage: "registry.example.com/mfa-operator:v1", WebhookReplicas: 3}
	tests := []struct {
		name     string
		opts     func(o controllers.Options) controllers.Options
		image    string
		replicas int32
		args     []string
	}{
		{
			name:     "flags are passed on",
			opts:     func(o controllers.Options) controllers.Options { return o },
			image:    "registry.example.com/mfa-operator:v1",
			replicas: 3,
			args: []string{"webhook", "--namespace=mfa-system", "--public-url=https://auth.example.com", "--cookie-domain=example.com",
				"--trusted-proxies=10.0.0.0/8,192.168.0.0/16", "--insecure-cookies=false", "--identity-headers=*", "--trust-x-real-ip=false", "--allow-ambiguous-paths=false", "--metrics-addr=:9090", "--grpc-addr=:9001"},
		},
		{
			name: "defaults for image and replicas, derived public URL, the opt-in flags passed on",
			opts: func(o controllers.Options) controllers.Options {
				o.WebhookImage, o.WebhookReplicas, o.PublicURL, o.InsecureCookies = "", 0, "", true
				o.TrustXRealIP, o.AmbiguousPaths = true, true
				return o
			},
			image:    controllers.DefaultWebhookImage,
			replicas: controllers.DefaultWebhookReplicas,
			args: []string{"webhook", "--namespace=mfa-system", "--public-url=http://auth.example.com", "--cookie-domain=example.com",
				"--trusted-proxies=10.0.0.0/8,192.168.0.0/16", "--insecure-cookies=true", "--identity-headers=*", "--trust-x-real-ip=true", "--allow-ambiguous-paths=true", "--metrics-addr=:9090", "--grpc-addr=:9001"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			d := controllers.ChallengeDeployment(tt.opts(base))
			g.Expect(d.Name).To(Equal("mfa-challenge"))
			g.Expect(d.Namespace).To(Equal("mfa-system"))
			g.Expect(d.Spec.Replicas).To(Equal(ptr.To(tt.replicas)))
			g.Expect(d.Spec.Selector.MatchLabels).To(Equal(map[string]string{"app.kubernetes.io/name": "mfa-challenge", "app.kubernetes.io/part-of": "mfa-operator"}))
			g.Expect(d.Spec.Template.Labels).To(Equal(d.Labels))
			for k, v := range d.Spec.Selector.MatchLabels {
				g.Expect(d.Spec.Template.Labels).To(HaveKeyWithValue(k, v))
			}
			g.Expect(d.Spec.Strategy.RollingUpdate.MaxUnavailable).To(Equal(ptr.To(intstr.FromInt32(0))))
			g.Expect(d.Spec.Template.Annotations).To(Equal(map[string]string{
				"prometheus.io/scrape": "true", "prometheus.io/port": "9090", "prometheus.io/path": "/metrics"}), "the pod template does not follow the bundle")

			pod := d.Spec.Template.Spec
			g.Expect(pod.ServiceAccountName).To(Equal("mfa-challenge"))
			g.Expect(*pod.SecurityContext.RunAsNonRoot).To(BeTrue())
			g.Expect(*pod.SecurityContext.RunAsUser).To(BeEquivalentTo(65532))
			g.Expect(pod.SecurityContext.SeccompProfile.Type).To(Equal(corev1.SeccompProfileTypeRuntimeDefault))
			g.Expect(pod.Containers).To(HaveLen(1))
			c := pod.Containers[0]
			g.Expect(c.Image).To(Equal(tt.image))
			g.Expect(c.Args).To(Equal(tt.args))
			g.Expect(c.Ports).To(Equal([]corev1.ContainerPort{
				{Name: "http", ContainerPort: 8080, Protocol: corev1.ProtocolTCP},
				{Name: "metrics", ContainerPort: 9090, Protocol: corev1.ProtocolTCP},
				{Name: "grpc-authz", ContainerPort: 9001, Protocol: corev1.ProtocolTCP},
			}))
			g.Expect(c.ReadinessProbe.HTTPGet.Path).To(Equal("/readyz"))
			g.Expect(c.ReadinessProbe.HTTPGet.Port).To(Equal(intstr.FromString("http")))
			g.Expect(c.LivenessProbe.HTTPGet.Path).To(Equal("/healthz"))
			g.Expect(c.LivenessProbe.HTTPGet.Port).To(Equal(intstr.FromString("http")))
			g.Expect(c.Resources.Requests).To(HaveKey(corev1.ResourceCPU))
			g.Expect(c.Resources.Limits[corev1.ResourceMemory]).To(Equal(resource.MustParse("256Mi")))
			g.Expect(c.Resources.Requests[corev1.ResourceMemory]).To(Equal(resource.MustParse("128Mi")))
			g.Expect(c.Env).To(ContainElement(corev1.EnvVar{Name: "GOMEMLIMIT", ValueFrom: &corev1.EnvVarSource{
				ResourceFieldRef: &corev1.ResourceFieldSelector{ContainerName: "challenge", Resource: "limits.memory"},
			}}), "the Go runtime knows the container's memory limit")
			sc := c.SecurityContext
			g.Expect(*sc.RunAsNonRoot).To(BeTrue())
			g.Expect(*sc.RunAsUser).To(BeEquivalentTo(65532))
			g.Expect(*sc.ReadOnlyRootFilesystem).To(BeTrue())
			g.Expect(*sc.AllowPrivilegeEscalation).To(BeFalse())
			g.Expect(sc.Capabilities.Drop).To(Equal([]corev1.Capability{"ALL"}))
			g.Expect(sc.SeccompProfile.Type).To(Equal(corev1.SeccompProfileTypeRuntimeDefault))
		})
	}
}

func TestChallengeService(t *testing.T) {
	g := NewWithT(t)
	o := controllers.Options{Namespace: "auth"}
	s := controllers.ChallengeService(o)
	d := controllers.ChallengeDeployment(o)
	g.Expect(s.Name).To(Equal("mfa-challenge"))
	g.Expect(s.Namespace).To(Equal("auth"))
	g.Expect(s.Spec.Type).To(Equal(corev1.ServiceTypeClusterIP))
	g.Expect(s.Spec.Selector).To(Equal(d.Spec.Selector.MatchLabels))
	g.Expect(s.Spec.Ports).To(Equal([]corev1.ServicePort{
		{Name: "http", Port: 80, TargetPort: intstr.FromString("http"), Protocol: corev1.ProtocolTCP},
		{Name: "grpc-authz", Port: 9001, TargetPort: intstr.FromString("grpc-authz"), Protocol: corev1.ProtocolTCP},
	}), "the page port and the ext_authz gRPC port: metrics are scraped from the pods, never reached through the front doors' address")
}

func TestMergeDeployment(t *testing.T) {
	o := controllers.Options{Namespace: "mfa-system", WebhookReplicas: 2}
	tests := []struct {
		name     string
		existing func() *appsv1.Deployment
		check    func(g Gomega, got *appsv1.Deployment)
	}{
		{
			name: "the bundle-hash annotation of earlier versions is removed, other annotations kept",
			existing: func() *appsv1.Deployment {
				d := controllers.ChallengeDeployment(o)
				d.Spec.Template.Annotations = map[string]string{"mfa.operator.dev/bundle-hash": "old", "kubectl.kubernetes.io/restartedAt": "now"}
				return d
			},
			check: func(g Gomega, got *appsv1.Deployment) {
				g.Expect(got.Spec.Template.Annotations).To(Equal(map[string]string{"kubectl.kubernetes.io/restartedAt": "now",
					"prometheus.io/scrape": "true", "prometheus.io/port": "9090", "prometheus.io/path": "/metrics"}))
			},
		},
		{
			name: "another image replaces the template",
			existing: func() *appsv1.Deployment {
				d := controllers.ChallengeDeployment(o)
				d.Spec.Template.Spec.Containers[0].Image = "mfa-operator:old"
				return d
			},
			check: func(g Gomega, got *appsv1.Deployment) {
				g.Expect(got.Spec.Template.Spec.Containers[0].Image).To(Equal(controllers.DefaultWebhookImage))
			},
		},
		{
			name: "an extra argument is removed",
			existing: func() *appsv1.Deployment {
				d := controllers.ChallengeDeployment(o)
				d.Spec.Template.Spec.Containers[0].Args = append(d.Spec.Template.Spec.Containers[0].Args, "--insecure-cookies=true")
				return d
			},
			check: func(g Gomega, got *appsv1.Deployment) {
				g.Expect(got.Spec.Template.Spec.Containers[0].Args).To(Equal(controllers.ChallengeArgs(o)))
			},
		},
		{
			name: "an extra sidecar is removed",
			existing: func() *appsv1.Deployment {
				d := controllers.ChallengeDeployment(o)
				d.Spec.Template.Spec.Containers = append(d.Spec.Template.Spec.Containers, corev1.Container{Name: "sidecar", Image: "x"})
				return d
			},
			check: func(g Gomega, got *appsv1.Deployment) {
				g.Expect(got.Spec.Template.Spec.Containers).To(HaveLen(1))
			},
		},
		{
			name: "defaults and foreign labels are kept",
			existing: func() *appsv1.Deployment {
				d := controllers.ChallengeDeployment(o)
				d.Labels["team"] = "security"
				d.Spec.Template.Spec.DNSPolicy = corev1.DNSClusterFirst
				d.Spec.Template.Spec.Containers[0].TerminationMessagePath = "/dev/termination-log"
				return d
			},
			check: func(g Gomega, got *appsv1.Deployment) {
				g.Expect(got.Labels).To(HaveKeyWithValue("team", "security"))
				g.Expect(got.Spec.Template.Spec.DNSPolicy).To(Equal(corev1.DNSClusterFirst))
				g.Expect(got.Spec.Template.Spec.Containers[0].TerminationMessagePath).To(Equal("/dev/termination-log"))
			},
		},
		{
			name: "the selector of an existing Deployment is left alone",
			existing: func() *appsv1.Deployment {
				d := controllers.ChallengeDeployment(o)
				d.Spec.Selector.MatchLabels = map[string]string{"app": "old"}
				return d
			},
			check: func(g Gomega, got *appsv1.Deployment) {
				g.Expect(got.Spec.Selector.MatchLabels).To(Equal(map[string]string{"app": "old"}))
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			got := tt.existing()
			controllers.MergeDeployment(got, controllers.ChallengeDeployment(o))
			tt.check(g, got)
		})
	}
}

// TestChallengePodTemplateFollowsOptions: the pod template (what rolls the
// pods) changes with the image and the flags passed on, and with nothing
// else; the bundle is not among its inputs at all.
func TestChallengePodTemplateFollowsOptions(t *testing.T) {
	base := controllers.Options{Namespace: "mfa-system", PublicURL: "https://auth.example.com", CookieDomain: "example.com",
		TrustedProxies: "10.0.0.0/8", WebhookImage: "registry.example.com/mfa-operator:v1", WebhookReplicas: 2}
	tests := []struct {
		name   string
		change func(o *controllers.Options)
		rolls  bool
	}{
		{name: "same options", change: func(*controllers.Options) {}, rolls: false},
		{name: "replicas", change: func(o *controllers.Options) { o.WebhookReplicas = 3 }, rolls: false},
		{name: "image", change: func(o *controllers.Options) { o.WebhookImage = "registry.example.com/mfa-operator:v2" }, rolls: true},
		{name: "trusted proxies", change: func(o *controllers.Options) { o.TrustedProxies = "10.0.0.0/8,192.168.0.0/16" }, rolls: true},
		{name: "cookie domain", change: func(o *controllers.Options) { o.CookieDomain = "example.org" }, rolls: true},
		{name: "identity headers", change: func(o *controllers.Options) { o.IdentityHeaders = []string{"X-Auth-Request-Email"} }, rolls: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			existing := controllers.ChallengeDeployment(base)
			before := existing.Spec.Template.DeepCopy()
			o := base
			tt.change(&o)
			controllers.MergeDeployment(existing, controllers.ChallengeDeployment(o))
			g.Expect(!equality.Semantic.DeepEqual(*before, existing.Spec.Template)).To(Equal(tt.rolls))
		})
	}
}

func TestOptionsURLs(t *testing.T) {
	tests := []struct {
		name               string
		opts               controllers.Options
		authURL, signinURL string
	}{
		{
			name:      "public URL",
			opts:      controllers.Options{Namespace: "mfa-system", PublicURL: "https://auth.example.com/"},
			authURL:   "http://mfa-challenge.mfa-system.svc.cluster.local/auth/apps/admin",
			signinURL: "https://auth.example.com/challenge/apps/admin",
		},
		{
			name:      "public URL with a path prefix",
			opts:      controllers.Options{Namespace: "mfa-system", PublicURL: "https://sso.example.com/mfa"},
			authURL:   "http://mfa-challenge.mfa-system.svc.cluster.local/auth/apps/admin",
			signinURL: "https://sso.example.com/mfa/challenge/apps/admin",
		},
		{
			name:      "derived from the cookie domain",
			opts:      controllers.Options{Namespace: "auth", CookieDomain: ".example.org"},
			authURL:   "http://mfa-challenge.auth.svc.cluster.local/auth/apps/admin",
			signinURL: "https://auth.example.org/challenge/apps/admin",
		},
		{
			name:      "derived from the cookie domain, insecure cookies",
			opts:      controllers.Options{Namespace: "auth", CookieDomain: "example.test", InsecureCookies: true},
			authURL:   "http://mfa-challenge.auth.svc.cluster.local/auth/apps/admin",
			signinURL: "http://auth.example.test/challenge/apps/admin",
		},
		{
			name:      "nothing to derive from: the Service",
			opts:      controllers.Options{Namespace: "mfa-system"},
			authURL:   "http://mfa-challenge.mfa-system.svc.cluster.local/auth/apps/admin",
			signinURL: "http://mfa-challenge.mfa-system.svc.cluster.local/challenge/apps/admin",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			g.Expect(tt.opts.AuthURL("apps", "admin")).To(Equal(tt.authURL))
			g.Expect(tt.opts.SigninURL("apps", "admin")).To(Equal(tt.signinURL))
		})
	}
}
