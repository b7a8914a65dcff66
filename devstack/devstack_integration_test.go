//go:build integration

package devstack

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/workflowservice/v1"
	sdkclient "go.temporal.io/sdk/client"
)

func TestTemporal(t *testing.T) {
	ctx := t.Context()
	started := time.Now()
	tmp, err := StartTemporal(ctx, TemporalOptions{
		Dir:              t.TempDir(),
		Namespace:        "reins-test",
		SearchAttributes: map[string]string{"ReinsStep": "Int", "ReinsTarget": "Keyword"},
		DynamicConfig:    map[string]any{"limit.maxIDLength": 255},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tmp.Stop)
	t.Logf("temporal ready at %s in %s", tmp.Address, time.Since(started).Round(time.Millisecond))

	c, err := sdkclient.DialContext(ctx, sdkclient.Options{HostPort: tmp.Address, Namespace: tmp.Namespace})
	if err != nil {
		t.Fatalf("dial %s: %v", tmp.Address, err)
	}
	defer c.Close()
	if _, err := c.CheckHealth(ctx, &sdkclient.CheckHealthRequest{}); err != nil {
		t.Fatalf("check health: %v", err)
	}
	if _, err := c.WorkflowService().DescribeNamespace(ctx, &workflowservice.DescribeNamespaceRequest{Namespace: "reins-test"}); err != nil {
		t.Fatalf("namespace reins-test was not created: %v", err)
	}
	attrs, err := c.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: "reins-test"})
	if err != nil {
		t.Fatalf("list search attributes: %v", err)
	}
	if got := attrs.GetCustomAttributes()["ReinsStep"]; got != enums.INDEXED_VALUE_TYPE_INT {
		t.Errorf("search attribute ReinsStep = %v, want Int", got)
	}
	if got := attrs.GetCustomAttributes()["ReinsTarget"]; got != enums.INDEXED_VALUE_TYPE_KEYWORD {
		t.Errorf("search attribute ReinsTarget = %v, want Keyword", got)
	}

	stopped := time.Now()
	tmp.Stop()
	t.Logf("temporal stopped in %s", time.Since(stopped).Round(time.Millisecond))
	if conn, err := net.DialTimeout("tcp", tmp.Address, time.Second); err == nil {
		conn.Close()
		t.Errorf("after Stop, %s still accepts connections", tmp.Address)
	}
}

func TestTemporalUI(t *testing.T) {
	tmp, err := StartTemporal(t.Context(), TemporalOptions{
		Dir:             t.TempDir(),
		UI:              true,
		UICodecEndpoint: "http://127.0.0.1:1/codec",
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tmp.Stop)
	if tmp.UIURL == "" {
		t.Fatal("UIURL is empty with UI set")
	}
	resp, err := http.Get(tmp.UIURL + "/api/v1/settings")
	if err != nil {
		t.Fatalf("get UI settings: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "127.0.0.1:1/codec") {
		t.Errorf("UI settings: %s %s; want 200 naming the codec endpoint", resp.Status, body)
	}
}

func TestKube(t *testing.T) {
	ctx := t.Context()
	started := time.Now()
	kube, err := StartKube(ctx, KubeOptions{Dir: t.TempDir(), Nodes: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stopped := time.Now()
		kube.Stop()
		t.Logf("kube stopped in %s", time.Since(stopped).Round(time.Millisecond))
	})
	t.Logf("kube ready at %s in %s", kube.Config.Host, time.Since(started).Round(time.Millisecond))

	// The kubeconfig file works on its own.
	fromFile, err := clientcmd.BuildConfigFromFlags("", kube.KubeconfigPath)
	if err != nil {
		t.Fatal(err)
	}
	clients, err := kubernetes.NewForConfig(fromFile)
	if err != nil {
		t.Fatal(err)
	}
	nodes, err := clients.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes.Items) != 2 || len(kube.NodeNames) != 2 {
		t.Fatalf("%d nodes, NodeNames %v; want 2", len(nodes.Items), kube.NodeNames)
	}

	const ns, name = "default", "app"
	replicas := int32(2)
	labels := map[string]string{"app": name}
	deploy := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name: "app", Image: "registry.example/app:v1",
				}}},
			},
		},
	}
	if _, err := clients.AppsV1().Deployments(ns).Create(ctx, deploy, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create deployment: %v", err)
	}
	waitRollout(t, clients, ns, name, 2)

	pods, err := clients.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=" + name})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pods.Items {
		if p.Status.Phase != corev1.PodRunning || p.Spec.NodeName == "" || p.Status.PodIP == "" {
			t.Errorf("pod %s: phase %s on node %q with IP %q; want Running, scheduled, with an IP",
				p.Name, p.Status.Phase, p.Spec.NodeName, p.Status.PodIP)
		}
	}

	rolled := time.Now()
	patch := `{"spec":{"template":{"spec":{"containers":[{"name":"app","image":"registry.example/app:v2"}]}}}}`
	if _, err := clients.AppsV1().Deployments(ns).Patch(ctx, name, types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatalf("patch image: %v", err)
	}
	waitRollout(t, clients, ns, name, 2)
	t.Logf("image rollout completed in %s", time.Since(rolled).Round(time.Millisecond))

	pods, err = clients.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=" + name})
	if err != nil {
		t.Fatal(err)
	}
	running := 0
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil && p.Spec.Containers[0].Image == "registry.example/app:v2" && p.Status.Phase == corev1.PodRunning {
			running++
		}
	}
	if running != 2 {
		t.Errorf("%d running pods with image v2, want 2", running)
	}
}

// waitRollout waits until the deployment's rollout is complete with want
// replicas available.
func waitRollout(t *testing.T, clients kubernetes.Interface, ns, name string, want int32) {
	t.Helper()
	err := waitReady(t.Context(), time.Now().Add(2*time.Minute), "rollout of "+name, func(ctx context.Context) error {
		d, err := clients.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		s := d.Status
		if s.ObservedGeneration >= d.Generation && s.Replicas == want && s.UpdatedReplicas == want &&
			s.AvailableReplicas == want && s.ReadyReplicas == want {
			return nil
		}
		return fmt.Errorf("generation %d observed %d, replicas %d updated %d ready %d available %d",
			d.Generation, s.ObservedGeneration, s.Replicas, s.UpdatedReplicas, s.ReadyReplicas, s.AvailableReplicas)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestTemporalReuseDirAndCancel starts a second server on the first one's
// database, then checks that cancelling the context stops it.
func TestTemporalReuseDirAndCancel(t *testing.T) {
	dir := t.TempDir()
	opts := TemporalOptions{Dir: dir, Namespace: "reins-test", SearchAttributes: map[string]string{"ReinsStep": "Int"}}
	first, err := StartTemporal(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	first.Stop()

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	second, err := StartTemporal(ctx, opts)
	if err != nil {
		t.Fatalf("start on the same Dir again: %v", err)
	}
	t.Cleanup(second.Stop)
	cancel()
	err = waitReady(t.Context(), time.Now().Add(30*time.Second), "temporal gone after cancel", func(context.Context) error {
		if conn, err := net.DialTimeout("tcp", second.Address, time.Second); err == nil {
			conn.Close()
			return fmt.Errorf("%s still accepts connections", second.Address)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestVault(t *testing.T) {
	ctx := t.Context()
	started := time.Now()
	v, err := StartVault(ctx, VaultOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Stop)
	t.Logf("vault ready at %s in %s", v.Addr, time.Since(started).Round(time.Millisecond))

	health := vaultCall(t, v, http.MethodGet, "/v1/sys/health", "")
	if health.status != http.StatusOK || !strings.Contains(health.body, `"sealed":false`) {
		t.Fatalf("health: %d %s; want 200 unsealed", health.status, health.body)
	}
	// Dev mode mounts KV v2 at secret/.
	if r := vaultCall(t, v, http.MethodPut, "/v1/secret/data/probe", `{"data":{"k":"v"}}`); r.status != http.StatusOK {
		t.Fatalf("write secret: %d %s", r.status, r.body)
	}
	if r := vaultCall(t, v, http.MethodGet, "/v1/secret/data/probe", ""); r.status != http.StatusOK || !strings.Contains(r.body, `"k":"v"`) {
		t.Fatalf("read secret: %d %s", r.status, r.body)
	}

	addr := v.Addr
	v.Stop()
	if conn, err := net.DialTimeout("tcp", strings.TrimPrefix(addr, "http://"), time.Second); err == nil {
		conn.Close()
		t.Fatalf("after Stop, %s still accepts connections", addr)
	}
	restarted := time.Now()
	if err := v.Start(ctx); err != nil {
		t.Fatalf("start again: %v", err)
	}
	t.Logf("vault restarted in %s", time.Since(restarted).Round(time.Millisecond))
	if v.Addr != addr {
		t.Errorf("address changed across restart: %s → %s", addr, v.Addr)
	}
	// Same token, fresh state.
	if r := vaultCall(t, v, http.MethodGet, "/v1/secret/data/probe", ""); r.status != http.StatusNotFound {
		t.Errorf("read secret after restart: %d %s; want 404 (dev mode forgets)", r.status, r.body)
	}
	if err := v.Start(ctx); err == nil {
		t.Error("Start on a running server succeeded; want an error")
	}
	if err := v.Restart(ctx); err != nil {
		t.Fatalf("restart: %v", err)
	}

	logData, err := os.ReadFile(v.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(logData), v.RootToken) {
		t.Error("the vault log holds the root token")
	}
}

type vaultResponse struct {
	status int
	body   string
}

func vaultCall(t *testing.T, v *Vault, method, path, body string) vaultResponse {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, v.Addr+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Vault-Token", v.RootToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return vaultResponse{resp.StatusCode, string(data)}
}
