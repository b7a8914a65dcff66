package devstack

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

const (
	// KwokNodeAnnotation marks the nodes kwok manages; StartKube sets it to
	// KwokNodeAnnotationValue on the nodes it creates.
	KwokNodeAnnotation      = "kwok.x-k8s.io/node"
	KwokNodeAnnotationValue = "fake"
	// ServiceAccountIssuer is the API server's --service-account-issuer.
	ServiceAccountIssuer = "https://kubernetes.default.svc.cluster.local"
	// AdminUser is the common name of the admin client certificate; its group
	// is system:masters.
	AdminUser = "reins-devstack-admin"

	// frontProxyClient is the common name of the API server's front-proxy
	// client certificate.
	frontProxyClient = "front-proxy-client"
)

// KubeOptions configures StartKube. The zero value of every field but Dir is a
// working default.
type KubeOptions struct {
	// Dir holds the etcd data (emptied at every start: the cluster starts
	// fresh), the certificates (pki/), the admin kubeconfig and one log per
	// component. Required.
	Dir string
	// Nodes is how many simulated nodes to create. Default: 1.
	Nodes int
	// NodeCapacity is each node's capacity and allocatable.
	// Default: cpu 32, memory 128Gi, pods 110.
	NodeCapacity corev1.ResourceList
	// ServiceClusterIPRange is the API server's --service-cluster-ip-range.
	// The addresses are never routed anywhere. Default: "10.96.0.0/16".
	ServiceClusterIPRange string
	// PodCIDR is the range kwok hands pod IPs out of; like the service range
	// it is only written into objects. Default: "10.244.0.0/16".
	PodCIDR string
	// KwokStagesDir holds the kwok Stage YAML files, each passed as --config.
	// Default: KwokStagesDir().
	KwokStagesDir string
	// Timeout bounds each wait: each component's readiness in turn, then
	// the nodes becoming Ready and untainted together with the default
	// ServiceAccount appearing. Default: 2 minutes.
	Timeout time.Duration
	// StopTimeout is how long Stop waits for each component after SIGTERM
	// before SIGKILL. Default: 10 seconds.
	StopTimeout time.Duration
	// Logger receives progress messages. Default: slog.Default().
	Logger *slog.Logger
}

// Kube is a running local Kubernetes control plane with simulated nodes.
type Kube struct {
	// Config is an admin (system:masters) client configuration.
	Config *rest.Config
	// KubeconfigPath is the same admin configuration as a kubeconfig file,
	// with the certificates embedded.
	KubeconfigPath string
	// Dir is the folder given in KubeOptions.Dir, made absolute.
	Dir string
	// EtcdURL is etcd's client URL.
	EtcdURL string
	// NodeNames are the simulated nodes, Ready and untainted at start.
	NodeNames []string

	log         *slog.Logger
	stopTimeout time.Duration
	stopWatch   func() bool

	mu      sync.Mutex
	procs   []*process // in start order
	stopped bool
}

// kubePKI is what StartKube generates and writes under Dir/pki.
type kubePKI struct {
	ca, serving, admin *keyPair
	caFile, caKeyFile  string
	servingCert        string
	servingKey         string
	saKeyFile          string
	saPubFile          string
	// The front proxy's CA and client certificate: the API server's
	// request-header authentication, which the controller manager and the
	// scheduler read (they log errors every second without it) and which
	// aggregated API servers need.
	frontProxyCAFile   string
	frontProxyCertFile string
	frontProxyKeyFile  string
}

// kubeBinaryNames are the programs StartKube runs.
func kubeBinaryNames() []string {
	return []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"}
}

// StartKube starts etcd, kube-apiserver, kube-controller-manager,
// kube-scheduler and kwok on 127.0.0.1, creates the simulated nodes and
// returns once they are Ready and untainted and pods can be admitted in the
// default namespace. The control plane runs until Stop is called or ctx is
// cancelled.
func StartKube(ctx context.Context, opts KubeOptions) (*Kube, error) {
	started := time.Now()
	dir, err := componentDir(opts.Dir, "KubeOptions.Dir")
	if err != nil {
		return nil, err
	}
	if opts.Nodes < 0 {
		return nil, fmt.Errorf("KubeOptions.Nodes is %d: use 0 for the default of 1, or a positive count", opts.Nodes)
	}
	bins := map[string]string{}
	var missing []error
	for _, name := range kubeBinaryNames() {
		if bins[name], err = FindBinary(name); err != nil {
			missing = append(missing, err)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("start kube: %w", errors.Join(missing...))
	}
	stagesDir := opts.KwokStagesDir
	if stagesDir == "" {
		if stagesDir, err = KwokStagesDir(); err != nil {
			return nil, fmt.Errorf("start kube: %w", err)
		}
	}
	stages, err := filepath.Glob(filepath.Join(stagesDir, "*.yaml"))
	if err != nil || len(stages) == 0 {
		return nil, fmt.Errorf("start kube: no kwok stage *.yaml in %s; run scripts/setup.sh or set KubeOptions.KwokStagesDir", stagesDir)
	}

	k := &Kube{
		Dir:         dir,
		log:         loggerOr(opts.Logger),
		stopTimeout: orDefault(opts.StopTimeout, defaultStopTimeout),
	}
	k.stopWatch = context.AfterFunc(ctx, k.stopAll)
	if err := k.start(ctx, opts, bins, stages); err != nil {
		k.Stop()
		return nil, fmt.Errorf("start kube: %w", err)
	}
	k.log.Info("devstack: kube ready", "apiserver", k.Config.Host, "nodes", k.NodeNames,
		"took", time.Since(started).Round(time.Millisecond), "kubeconfig", k.KubeconfigPath)
	return k, nil
}

func (k *Kube) start(ctx context.Context, opts KubeOptions, bins map[string]string, stages []string) error {
	timeout := orDefault(opts.Timeout, defaultTimeout)
	pki, err := writeKubePKI(filepath.Join(k.Dir, "pki"), time.Now())
	if err != nil {
		return err
	}
	caPool := x509.NewCertPool()
	caPool.AddCert(pki.ca.cert)
	tlsClient := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: caPool}}}
	defer tlsClient.CloseIdleConnections()

	// etcd, on a fresh data folder.
	etcdData := filepath.Join(k.Dir, "etcd")
	if err := os.RemoveAll(etcdData); err != nil {
		return fmt.Errorf("empty etcd data folder %s: %w", etcdData, err)
	}
	err = k.launch(ctx, timeout, "etcd", 2, func(p []int) (procSpec, func(context.Context) error) {
		k.EtcdURL = fmt.Sprintf("http://127.0.0.1:%d", p[0])
		peer := fmt.Sprintf("http://127.0.0.1:%d", p[1])
		return procSpec{path: bins["etcd"], dropEnv: []string{"ETCD_"}, args: []string{
			"--name=devstack",
			"--data-dir=" + etcdData,
			"--listen-client-urls=" + k.EtcdURL,
			"--advertise-client-urls=" + k.EtcdURL,
			"--listen-peer-urls=" + peer,
			"--initial-advertise-peer-urls=" + peer,
			"--initial-cluster=devstack=" + peer,
			"--initial-cluster-state=new",
			"--unsafe-no-fsync",
			"--log-level=warn",
		}}, httpGetOK(http.DefaultClient, k.EtcdURL+"/health")
	})
	if err != nil {
		return err
	}

	// kube-apiserver.
	var server string
	err = k.launch(ctx, timeout, "kube-apiserver", 1, func(p []int) (procSpec, func(context.Context) error) {
		server = fmt.Sprintf("https://127.0.0.1:%d", p[0])
		return procSpec{path: bins["kube-apiserver"], args: []string{
			"--etcd-servers=" + k.EtcdURL,
			"--bind-address=127.0.0.1",
			"--advertise-address=127.0.0.1",
			// The endpoint reconciler refuses a loopback advertise address
			// ("may not be in the loopback range"); nothing here needs the
			// kubernetes Service's endpoints.
			"--endpoint-reconciler-type=none",
			"--secure-port=" + strconv.Itoa(p[0]),
			"--cert-dir=" + filepath.Join(k.Dir, "kube-apiserver"),
			"--tls-cert-file=" + pki.servingCert,
			"--tls-private-key-file=" + pki.servingKey,
			"--client-ca-file=" + pki.caFile,
			"--service-account-key-file=" + pki.saPubFile,
			"--service-account-signing-key-file=" + pki.saKeyFile,
			"--service-account-issuer=" + ServiceAccountIssuer,
			"--authorization-mode=Node,RBAC",
			"--service-cluster-ip-range=" + orDefault(opts.ServiceClusterIPRange, "10.96.0.0/16"),
			"--requestheader-client-ca-file=" + pki.frontProxyCAFile,
			"--requestheader-allowed-names=" + frontProxyClient,
			"--requestheader-username-headers=X-Remote-User",
			"--requestheader-group-headers=X-Remote-Group",
			"--requestheader-extra-headers-prefix=X-Remote-Extra-",
			"--proxy-client-cert-file=" + pki.frontProxyCertFile,
			"--proxy-client-key-file=" + pki.frontProxyKeyFile,
			"--allow-privileged=true",
			"--profiling=false",
		}}, httpGetOK(tlsClient, server+"/readyz")
	})
	if err != nil {
		return err
	}
	if err := k.writeKubeconfig(server, pki); err != nil {
		return err
	}

	// The controllers and kwok need only the API server.
	for _, c := range []struct {
		name string
		args func(port int) []string
	}{
		{"kube-controller-manager", func(port int) []string {
			return []string{
				"--kubeconfig=" + k.KubeconfigPath,
				"--authentication-kubeconfig=" + k.KubeconfigPath,
				"--authorization-kubeconfig=" + k.KubeconfigPath,
				// node-ipam-controller (formerly nodeipam) would need a cluster CIDR; every other controller,
				// node lifecycle included (it lifts the not-ready taint), runs.
				"--controllers=*,-node-ipam-controller",
				"--service-account-private-key-file=" + pki.saKeyFile,
				"--root-ca-file=" + pki.caFile,
				"--cluster-signing-cert-file=" + pki.caFile,
				"--cluster-signing-key-file=" + pki.caKeyFile,
				"--leader-elect=false",
				"--bind-address=127.0.0.1",
				"--secure-port=" + strconv.Itoa(port),
				"--cert-dir=" + filepath.Join(k.Dir, "kube-controller-manager"),
				"--tls-cert-file=" + pki.servingCert,
				"--tls-private-key-file=" + pki.servingKey,
			}
		}},
		{"kube-scheduler", func(port int) []string {
			return []string{
				"--kubeconfig=" + k.KubeconfigPath,
				"--authentication-kubeconfig=" + k.KubeconfigPath,
				"--authorization-kubeconfig=" + k.KubeconfigPath,
				"--leader-elect=false",
				"--bind-address=127.0.0.1",
				"--secure-port=" + strconv.Itoa(port),
				"--cert-dir=" + filepath.Join(k.Dir, "kube-scheduler"),
				"--tls-cert-file=" + pki.servingCert,
				"--tls-private-key-file=" + pki.servingKey,
			}
		}},
	} {
		err = k.launch(ctx, timeout, c.name, 1, func(p []int) (procSpec, func(context.Context) error) {
			return procSpec{path: bins[c.name], args: c.args(p[0])},
				httpGetOK(tlsClient, fmt.Sprintf("https://127.0.0.1:%d/healthz", p[0]))
		})
		if err != nil {
			return err
		}
	}
	kwokDir := filepath.Join(k.Dir, "kwok")
	err = k.launch(ctx, timeout, "kwok", 1, func(p []int) (procSpec, func(context.Context) error) {
		addr := fmt.Sprintf("127.0.0.1:%d", p[0])
		args := []string{
			"--kubeconfig=" + k.KubeconfigPath,
			"--manage-all-nodes=false",
			"--manage-nodes-with-annotation-selector=" + KwokNodeAnnotation + "=" + KwokNodeAnnotationValue,
			"--server-address=" + addr,
			"--node-ip=127.0.0.1",
			"--node-lease-duration-seconds=40",
			"--cidr=" + orDefault(opts.PodCIDR, "10.244.0.0/16"),
		}
		for _, s := range stages {
			args = append(args, "--config="+s)
		}
		// kwok keeps its work folder in ~/.kwok unless told otherwise.
		return procSpec{path: bins["kwok"], args: args, env: []string{"KWOK_WORKDIR=" + kwokDir}, dropEnv: []string{"KWOK_"}},
			httpGetOK(http.DefaultClient, "http://"+addr+"/healthz")
	})
	if err != nil {
		return err
	}

	clients, err := kubernetes.NewForConfig(k.Config)
	if err != nil {
		return fmt.Errorf("build kubernetes client: %w", err)
	}
	if err := k.createNodes(ctx, clients, opts); err != nil {
		return err
	}
	procs := k.running()
	deadline := time.Now().Add(timeout)
	if err := waitReady(ctx, deadline, fmt.Sprintf("nodes %v Ready and untainted", k.NodeNames),
		func(ctx context.Context) error { return nodesReady(ctx, clients, k.NodeNames) }, procs...); err != nil {
		return err
	}
	return waitReady(ctx, deadline, "ServiceAccount default/default", func(ctx context.Context) error {
		_, err := clients.CoreV1().ServiceAccounts(metav1.NamespaceDefault).Get(ctx, "default", metav1.GetOptions{})
		return err
	}, procs...)
}

// launch starts one component on ports fresh from freePorts and waits until
// its ready check passes, retrying on new ports when the log shows that a
// port was taken in between. build gets the ports and returns the process
// (its name and working folder are filled in) and the check.
func (k *Kube) launch(ctx context.Context, timeout time.Duration, name string, nports int,
	build func(ports []int) (procSpec, func(context.Context) error)) error {
	started := time.Now()
	workDir := filepath.Join(k.Dir, name)
	if err := os.MkdirAll(workDir, 0o700); err != nil {
		return fmt.Errorf("make %s folder: %w", name, err)
	}
	for attempt := 1; ; attempt++ {
		ports, err := freePorts(nports)
		if err != nil {
			return err
		}
		spec, ready := build(ports)
		// Each component works in its own folder; the logs sit side by side
		// at the top of Dir.
		spec.name, spec.dir, spec.logDir = name, workDir, k.Dir
		p, err := k.startTracked(spec)
		if err != nil {
			return err
		}
		err = waitReady(ctx, time.Now().Add(timeout), name, ready, k.running()...)
		if err == nil {
			k.log.Debug("devstack: component ready", "component", name, "pid", p.pid,
				"took", time.Since(started).Round(time.Millisecond), "log", p.logPath)
			return nil
		}
		p.stop(k.stopTimeout)
		k.untrack(p)
		if !errorsIsPortInUse(err) || attempt == portAttempts {
			return err
		}
		k.log.Warn("devstack: component lost a port race, retrying on new ports", "component", name, "attempt", attempt)
	}
}

// startTracked starts spec and records the process so that Stop reaches it.
// It refuses once Stop has begun.
func (k *Kube) startTracked(spec procSpec) (*process, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.stopped {
		return nil, errors.New("stopped while starting: the context was cancelled or Stop was called")
	}
	p, err := startProcess(spec)
	if err != nil {
		return nil, err
	}
	k.procs = append(k.procs, p)
	return p, nil
}

// untrack forgets a process that has been stopped.
func (k *Kube) untrack(p *process) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.procs = slices.DeleteFunc(k.procs, func(q *process) bool { return q == p })
}

// running returns the processes started so far.
func (k *Kube) running() []*process {
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.Clone(k.procs)
}

// Stop stops kwok, the scheduler, the controller manager, the API server and
// etcd, in that order, each with SIGTERM and then SIGKILL after StopTimeout,
// and waits for each to exit. Dir stays. Calling Stop again is a no-op.
func (k *Kube) Stop() {
	k.stopWatch()
	k.stopAll()
}

func (k *Kube) stopAll() {
	k.mu.Lock()
	k.stopped = true
	procs := slices.Clone(k.procs)
	k.mu.Unlock()
	for _, p := range slices.Backward(procs) {
		p.stop(k.stopTimeout)
	}
}

// writeKubePKI generates the cluster's CA, a serving certificate for
// 127.0.0.1 and localhost (shared by the API server, the controller manager
// and the scheduler), the admin client certificate, the service-account key
// pair and the front-proxy CA and client certificate, and writes the files
// the components read into dir.
func writeKubePKI(dir string, now time.Time) (*kubePKI, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("make pki folder %s: %w", dir, err)
	}
	ca, err := newCA("reins-devstack-ca", now)
	if err != nil {
		return nil, err
	}
	serving, err := ca.issueServer("127.0.0.1",
		[]string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"},
		[]net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}, now)
	if err != nil {
		return nil, err
	}
	admin, err := ca.issueClient(AdminUser, []string{"system:masters"}, now)
	if err != nil {
		return nil, err
	}
	saKey, saPub, err := newServiceAccountKey()
	if err != nil {
		return nil, err
	}
	frontCA, err := newCA("reins-devstack-front-proxy-ca", now)
	if err != nil {
		return nil, err
	}
	front, err := frontCA.issueClient(frontProxyClient, nil, now)
	if err != nil {
		return nil, err
	}
	p := &kubePKI{
		ca: ca, serving: serving, admin: admin,
		caFile:      filepath.Join(dir, "ca.crt"),
		caKeyFile:   filepath.Join(dir, "ca.key"),
		servingCert: filepath.Join(dir, "serving.crt"),
		servingKey:  filepath.Join(dir, "serving.key"),
		saKeyFile:   filepath.Join(dir, "sa.key"),
		saPubFile:   filepath.Join(dir, "sa.pub"),

		frontProxyCAFile:   filepath.Join(dir, "front-proxy-ca.crt"),
		frontProxyCertFile: filepath.Join(dir, "front-proxy-client.crt"),
		frontProxyKeyFile:  filepath.Join(dir, "front-proxy-client.key"),
	}
	for path, data := range map[string][]byte{
		p.caFile: ca.certPEM, p.caKeyFile: ca.keyPEM,
		p.servingCert: serving.certPEM, p.servingKey: serving.keyPEM,
		p.saKeyFile: saKey, p.saPubFile: saPub,
		p.frontProxyCAFile: frontCA.certPEM, p.frontProxyCertFile: front.certPEM, p.frontProxyKeyFile: front.keyPEM,
	} {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			return nil, fmt.Errorf("write %s: %w", path, err)
		}
	}
	return p, nil
}

// writeKubeconfig writes the admin kubeconfig for server and sets Config and
// KubeconfigPath from it.
func (k *Kube) writeKubeconfig(server string, pki *kubePKI) error {
	path := filepath.Join(k.Dir, "kubeconfig")
	cfg, err := writeAdminKubeconfig(path, server, pki.ca.certPEM, pki.admin)
	if err != nil {
		return err
	}
	k.Config, k.KubeconfigPath = cfg, path
	return nil
}

// writeAdminKubeconfig writes a kubeconfig with embedded certificates for
// the given client and returns it loaded back as a rest.Config.
func writeAdminKubeconfig(path, server string, caPEM []byte, client *keyPair) (*rest.Config, error) {
	const name = "reins-devstack"
	kc := clientcmdapi.NewConfig()
	kc.Clusters[name] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: caPEM}
	kc.AuthInfos[name] = &clientcmdapi.AuthInfo{ClientCertificateData: client.certPEM, ClientKeyData: client.keyPEM}
	kc.Contexts[name] = &clientcmdapi.Context{Cluster: name, AuthInfo: name, Namespace: metav1.NamespaceDefault}
	kc.CurrentContext = name
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		return nil, fmt.Errorf("write kubeconfig %s: %w", path, err)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		return nil, fmt.Errorf("load kubeconfig %s back: %w", path, err)
	}
	// Tests create and watch many objects quickly; the defaults (5/10) throttle.
	cfg.QPS, cfg.Burst = 100, 200
	return cfg, nil
}

// defaultNodeCapacity is room for tens of pods.
func defaultNodeCapacity() corev1.ResourceList {
	return corev1.ResourceList{
		corev1.ResourceCPU:    *resource.NewQuantity(32, resource.DecimalSI),
		corev1.ResourceMemory: *resource.NewQuantity(128<<30, resource.BinarySI),
		corev1.ResourcePods:   *resource.NewQuantity(110, resource.DecimalSI),
	}
}

// createNodes creates the simulated nodes kwok manages.
func (k *Kube) createNodes(ctx context.Context, clients kubernetes.Interface, opts KubeOptions) error {
	capacity := opts.NodeCapacity
	if len(capacity) == 0 {
		capacity = defaultNodeCapacity()
	}
	for i := range orDefault(opts.Nodes, 1) {
		name := fmt.Sprintf("kwok-node-%d", i)
		node := &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{
				Name:        name,
				Annotations: map[string]string{KwokNodeAnnotation: KwokNodeAnnotationValue},
				Labels: map[string]string{
					corev1.LabelHostname:   name,
					corev1.LabelOSStable:   "linux",
					corev1.LabelArchStable: "amd64",
					"type":                 "kwok",
				},
			},
			Status: corev1.NodeStatus{
				Capacity:    capacity.DeepCopy(),
				Allocatable: capacity.DeepCopy(),
			},
		}
		if _, err := clients.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create node %s: %w", name, err)
		}
		k.NodeNames = append(k.NodeNames, name)
	}
	return nil
}

// nodesReady passes when every named node has Ready=True and no taints.
func nodesReady(ctx context.Context, clients kubernetes.Interface, names []string) error {
	var notReady []string
	for _, name := range names {
		node, err := clients.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("get node %s: %w", name, err)
		}
		ready := false
		for _, c := range node.Status.Conditions {
			if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
				ready = true
			}
		}
		var taints []string
		for _, t := range node.Spec.Taints {
			taints = append(taints, t.ToString())
		}
		if !ready || len(taints) > 0 {
			notReady = append(notReady, fmt.Sprintf("%s (ready=%t, taints=%v)", name, ready, taints))
		}
	}
	if len(notReady) > 0 {
		return fmt.Errorf("not yet: %s", strings.Join(notReady, ", "))
	}
	return nil
}
