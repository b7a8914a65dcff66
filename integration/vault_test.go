//go:build integration

package integration

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	vaultapi "github.com/hashicorp/vault/api"
	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	sdkclient "go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"google.golang.org/protobuf/encoding/protojson"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/reins-dev/reins/activities"
	"github.com/reins-dev/reins/codec"
	"github.com/reins-dev/reins/devstack"
	"github.com/reins-dev/reins/gateway"
	"github.com/reins-dev/reins/remediation"
	"github.com/reins-dev/reins/vaultclient"
	"github.com/reins-dev/reins/workers"
	"github.com/reins-dev/reins/workflows"
)

// startVault starts the Vault dev server, configures it for reins
// (devstack.ConfigureVault: deploy/'s RBAC, the kubernetes and transit
// engines, the roles, the worker's policy, AppRole and Kubernetes auth) and
// turns on a raw file audit device: its log is how the tests learn every
// token Vault minted, without reins handing one out.
func startVault(ctx context.Context, dir string, kube *devstack.Kube, logger *slog.Logger) (*devstack.Vault, *devstack.VaultSetup, error) {
	v, err := devstack.StartVault(ctx, devstack.VaultOptions{Dir: dir, Logger: logger})
	if err != nil {
		return nil, nil, err
	}
	setup, err := devstack.ConfigureVault(ctx, devstack.VaultSetupOptions{Vault: v, Kube: kube, Dir: dir, Logger: logger})
	if err == nil {
		err = enableVaultAudit(ctx, setup)
	}
	if err != nil {
		v.Stop()
		return nil, nil, err
	}
	return v, setup, nil
}

func vaultAuditLog() string { return filepath.Join(stack.dir, "vault", "audit.log") }

func enableVaultAudit(ctx context.Context, setup *devstack.VaultSetup) error {
	root, err := setup.RootClient()
	if err != nil {
		return err
	}
	path := filepath.Join(filepath.Dir(setup.AppRoleSecretIDFile), "audit.log")
	_, err = root.Logical().WriteWithContext(ctx, "sys/audit/raw", map[string]any{
		"type": "file", "options": map[string]any{"file_path": path, "log_raw": "true"},
	})
	if err != nil {
		return fmt.Errorf("enable the vault audit log: %w", err)
	}
	return nil
}

// mint is a credential Vault minted, as its audit log shows it.
type mint struct {
	LeaseID, Token, Namespace, Role string
}

// mintedIn lists the credentials Vault minted for namespace ns.
func mintedIn(t *testing.T, ns string) []mint {
	t.Helper()
	f, err := os.Open(vaultAuditLog())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []mint
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var e struct {
			Type    string `json:"type"`
			Request struct {
				Path string         `json:"path"`
				Data map[string]any `json:"data"`
			} `json:"request"`
			Response struct {
				Secret *struct {
					LeaseID string `json:"lease_id"`
				} `json:"secret"`
				Data map[string]any `json:"data"`
			} `json:"response"`
		}
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("vault audit log: %v", err)
		}
		role, ok := strings.CutPrefix(e.Request.Path, "kubernetes/creds/")
		if e.Type != "response" || !ok || e.Response.Secret == nil {
			continue
		}
		token, _ := e.Response.Data["service_account_token"].(string)
		if e.Request.Data["kubernetes_namespace"] != ns || token == "" {
			continue
		}
		out = append(out, mint{LeaseID: e.Response.Secret.LeaseID, Token: token, Namespace: ns, Role: role})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// vaultRoot is a root Vault client.
func vaultRoot(t testing.TB) *vaultapi.Client {
	t.Helper()
	c, err := stack.vaultSetup.RootClient()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// leaseAlive asks Vault whether a lease still exists.
func leaseAlive(t testing.TB, id string) bool {
	t.Helper()
	_, err := vaultRoot(t).Logical().Write("sys/leases/lookup", map[string]any{"lease_id": id})
	var re *vaultapi.ResponseError
	if errors.As(err, &re) && re.StatusCode == 400 {
		return false
	}
	if err != nil {
		t.Fatalf("look up lease %s: %v", id, err)
	}
	return true
}

// liveLeases lists the leases Vault holds for a role.
func liveLeases(t testing.TB, role string) []any {
	t.Helper()
	s, err := vaultRoot(t).Logical().List("sys/leases/lookup/kubernetes/creds/" + role + "/")
	if err != nil {
		t.Fatal(err)
	}
	if s == nil {
		return nil
	}
	keys, _ := s.Data["keys"].([]any)
	return keys
}

// envNamespace creates a namespace of the given environment: labelled so
// that environment's Vault role mints credentials for it.
func envNamespace(t testing.TB, prefix, environment string) string {
	t.Helper()
	name := unique(prefix)
	createNamespace(t, name)
	patch := fmt.Sprintf(`{"metadata":{"labels":{%q:%q}}}`, devstack.EnvironmentLabel, environment)
	if _, err := stack.kc.CoreV1().Namespaces().Patch(context.Background(), name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	return name
}

// workerKube is the worker's own, read-only identity.
func workerKube(t testing.TB) (*rest.Config, kubernetes.Interface) {
	t.Helper()
	cfg, err := workers.KubeConfig(stack.vaultSetup.WorkerKubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	kc, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return cfg, kc
}

// tokenClient is a client that authenticates with token alone.
func tokenClient(t testing.TB, token string) kubernetes.Interface {
	t.Helper()
	cfg := rest.AnonymousClientConfig(stack.kube.Config)
	cfg.BearerToken = token
	kc, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return kc
}

// vaultWorkerConfig is a worker config with per-step credentials from the
// test Vault, logging in with AppRole, and the read-only kubeconfig.
func vaultWorkerConfig(policyDir string) workers.Config {
	cfg := workers.DefaultConfig()
	cfg.TaskQueue = unique("reins-vault")
	cfg.PolicyDir = policyDir
	cfg.VerifyTimeout = workers.Duration(2 * time.Minute)
	cfg.Kubeconfig = stack.vaultSetup.WorkerKubeconfig
	cfg.Credentials = workers.CredentialsVault
	cfg.Vault.Addr = stack.vault.Addr
	cfg.Vault.Auth = workers.VaultAuthConfig{
		Method: vaultclient.MethodAppRole, RoleID: stack.vaultSetup.AppRoleRoleID, SecretIDFile: stack.vaultSetup.AppRoleSecretIDFile,
	}
	return cfg
}

// startVaultWorker runs a worker in the Vault credentials mode until the test ends.
func startVaultWorker(t testing.TB, cfg workers.Config) worker {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Approvals.TrustedKeys = map[string]string{"it": base64.StdEncoding.EncodeToString(pub)}
	cfg.Audit.NATS.URL = stack.nats.URL
	cfg.Audit.File.Path = filepath.Join(stack.dir, cfg.TaskQueue+"-audit.jsonl")
	_, kube := workerKube(t)
	runWorker(t, cfg, kube)
	return worker{cfg: cfg, signer: priv}
}

// stepCredentials is the credential source exactly as the worker builds it.
func stepCredentials(t testing.TB) *activities.VaultCredentials {
	t.Helper()
	vc, err := vaultWorkerConfig("").Vault.NewVaultClient(stack.logger)
	if err != nil {
		t.Fatal(err)
	}
	kcfg, _ := workerKube(t)
	return &activities.VaultCredentials{Vault: vc, Cluster: rest.AnonymousClientConfig(kcfg)}
}

func isFinal(err error, errType string) bool {
	var ae *temporal.ApplicationError
	return errors.As(err, &ae) && ae.NonRetryable() && ae.Type() == errType
}

// deadEverywhere fails unless every call with the token is refused: the
// step's own writes at once (403: Vault deleted the binding and the
// ServiceAccount before the revocation returned), and, once the API server's
// cache of successful token authentications (10s) has let go of it, even a
// self review, which any authenticated identity may do (401).
func deadEverywhere(t *testing.T, token, ns string) {
	t.Helper()
	kc := tokenClient(t, token)
	ctx := context.Background()
	calls := map[string]error{}
	_, calls["patch deployment"] = kc.AppsV1().Deployments(ns).Patch(ctx, "web", types.MergePatchType, []byte(`{"spec":{"replicas":1}}`), metav1.PatchOptions{})
	_, calls["list pods"] = kc.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	_, calls["create event"] = kc.CoreV1().Events(ns).Create(ctx, &corev1.Event{ObjectMeta: metav1.ObjectMeta{GenerateName: "x-"}, InvolvedObject: corev1.ObjectReference{Namespace: ns}}, metav1.CreateOptions{})
	_, calls["cordon a node"] = kc.CoreV1().Nodes().Patch(ctx, stack.kube.NodeNames[0], types.MergePatchType, []byte(`{"spec":{"unschedulable":true}}`), metav1.PatchOptions{})
	for what, err := range calls {
		if !apierrors.IsUnauthorized(err) && !apierrors.IsForbidden(err) {
			t.Errorf("revoked token: %s: got %v, want 401 or 403", what, err)
		}
	}
	waitFor(t, "the revoked token to be refused as unauthenticated", func() (bool, error) {
		_, err := kc.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
		return apierrors.IsUnauthorized(err), err
	})
}

// A step's credential can do what its Role allows in its namespace and
// nothing else; once released, the token is dead and Vault has no lease.
// The worker's own identity can read but not write.
func TestStepCredentialScope(t *testing.T) {
	ctx := context.Background()
	nsA := envNamespace(t, "it-cred", "staging")
	nsB := envNamespace(t, "it-cred", "staging")
	prod := envNamespace(t, "it-cred", "production")
	for _, ns := range []string{nsA, nsB, prod} {
		deployment(t, ns, "web", 1, "registry.example/web:v1")
	}
	creds := stepCredentials(t)
	scale := []byte(`{"spec":{"replicas":2}}`)

	// The worker's own identity reads, and may not write.
	_, own := workerKube(t)
	if _, err := own.AppsV1().Deployments(nsA).Get(ctx, "web", metav1.GetOptions{}); err != nil {
		t.Fatalf("worker identity cannot read: %v", err)
	}
	if _, err := own.AppsV1().Deployments(nsA).Patch(ctx, "web", types.MergePatchType, scale, metav1.PatchOptions{}); !apierrors.IsForbidden(err) {
		t.Fatalf("worker identity patching a Deployment: got %v, want Forbidden", err)
	}

	ref := remediation.StepRef{Remediation: "it-scope", Environment: "staging",
		Step: step(remediation.ActionScale, remediation.KindDeployment, nsA, "web", replicas(2))}
	choice, err := creds.Roles.Choose(ref)
	if err != nil {
		t.Fatal(err)
	}
	started := time.Now()
	cred, err := creds.Mint(ctx, choice)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("minted in %s", time.Since(started).Round(time.Millisecond))
	c := cred.Client
	lease := c.Lease()
	if lease.Role != "reins-staging" || lease.Namespace != nsA || lease.LeaseID == "" || lease.Revoked {
		t.Fatalf("lease %+v", lease)
	}
	if !leaseAlive(t, lease.LeaseID) {
		t.Fatal("the lease is not in Vault")
	}
	review, err := c.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	user := review.Status.UserInfo.Username
	saName, ok := strings.CutPrefix(user, "system:serviceaccount:"+nsA+":")
	if !ok {
		t.Fatalf("credential is %q, want a ServiceAccount of %s", user, nsA)
	}

	// Allowed: the step's own writes in its namespace.
	if _, err := c.AppsV1().Deployments(nsA).Patch(ctx, "web", types.MergePatchType, scale, metav1.PatchOptions{}); err != nil {
		t.Fatalf("step credential cannot scale its target: %v", err)
	}
	if got := *getDeployment(t, nsA, "web").Spec.Replicas; got != 2 {
		t.Fatalf("replicas %d after the patch", got)
	}
	if _, err := c.CoreV1().Events(nsA).Create(ctx, &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{GenerateName: "web."},
		InvolvedObject: corev1.ObjectReference{Kind: "Deployment", Namespace: nsA, Name: "web"},
		Reason:         "ReinsTest", Message: "test", Type: corev1.EventTypeNormal,
	}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("step credential cannot record its event: %v", err)
	}
	// Everything else is Forbidden: other verbs, other namespaces, other kinds.
	forbidden := map[string]error{}
	_, forbidden["list pods"] = c.CoreV1().Pods(nsA).List(ctx, metav1.ListOptions{})
	_, forbidden["get deployment"] = c.AppsV1().Deployments(nsA).Get(ctx, "web", metav1.GetOptions{})
	_, forbidden["list secrets"] = c.CoreV1().Secrets(nsA).List(ctx, metav1.ListOptions{})
	forbidden["delete deployment"] = c.AppsV1().Deployments(nsA).Delete(ctx, "web", metav1.DeleteOptions{})
	_, forbidden["patch deployment in another staging namespace"] = c.AppsV1().Deployments(nsB).Patch(ctx, "web", types.MergePatchType, scale, metav1.PatchOptions{})
	_, forbidden["patch deployment in production"] = c.AppsV1().Deployments(prod).Patch(ctx, "web", types.MergePatchType, scale, metav1.PatchOptions{})
	_, forbidden["create event in another namespace"] = c.CoreV1().Events(nsB).Create(ctx, &corev1.Event{ObjectMeta: metav1.ObjectMeta{GenerateName: "web."}, InvolvedObject: corev1.ObjectReference{Namespace: nsB}}, metav1.CreateOptions{})
	_, forbidden["cordon a node"] = c.CoreV1().Nodes().Patch(ctx, stack.kube.NodeNames[0], types.MergePatchType, []byte(`{"spec":{"unschedulable":true}}`), metav1.PatchOptions{})
	_, forbidden["bind a role"] = c.RbacV1().RoleBindings(nsA).Create(ctx, escalation(nsA), metav1.CreateOptions{})
	for what, err := range forbidden {
		if !apierrors.IsForbidden(err) {
			t.Errorf("step credential: %s: got %v, want Forbidden", what, err)
		}
	}

	started = time.Now()
	if err := cred.Release(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("revoked in %s", time.Since(started).Round(time.Millisecond))
	if !c.Lease().Revoked {
		t.Error("lease not marked revoked")
	}
	deadEverywhere(t, cred.Token, nsA)
	if leaseAlive(t, lease.LeaseID) {
		t.Error("Vault still holds the lease after the release")
	}
	if keys := liveLeases(t, "reins-staging"); len(keys) > 0 {
		t.Errorf("Vault still holds leases of reins-staging: %v", keys)
	}
	if _, err := stack.kc.CoreV1().ServiceAccounts(nsA).Get(ctx, saName, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the credential's ServiceAccount %s/%s survived the revocation: %v", nsA, saName, err)
	}

	// A step of one environment gets nothing for another's namespace, and
	// that is final: the activity fails without retrying.
	wrong := ref
	wrong.Environment = "production"
	if _, _, err := creds.ClientFor(ctx, wrong); !isFinal(err, remediation.ErrForbidden) {
		t.Errorf("production credential for a staging namespace: got %v, want a non-retryable %s", err, remediation.ErrForbidden)
	}
	unknown := ref
	unknown.Environment = "nowhere"
	if _, _, err := creds.ClientFor(ctx, unknown); !isFinal(err, remediation.ErrForbidden) {
		t.Errorf("credential of an environment without a role: got %v, want a non-retryable %s", err, remediation.ErrForbidden)
	}
}

// escalation is a RoleBinding to cluster-admin: what a credential must not
// be able to create.
func escalation(ns string) *rbacv1.RoleBinding {
	return &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "escalate", Namespace: ns},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "cluster-admin"},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: "default", Namespace: ns}},
	}
}

// A Node step gets a ClusterRole-based credential: it may cordon a node and
// nothing namespaced.
func TestNodeStepCredential(t *testing.T) {
	ctx := context.Background()
	ns := envNamespace(t, "it-node-cred", "staging")
	deployment(t, ns, "web", 1, "registry.example/web:v1")
	creds := stepCredentials(t)
	node := stack.kube.NodeNames[0]
	ref := remediation.StepRef{Remediation: "it-node", Environment: "staging",
		Step: remediation.Step{Action: remediation.ActionCordon, Target: remediation.Target{Kind: remediation.KindNode, Name: node}}}
	c, release, err := creds.ClientFor(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	lease := c.(*activities.LeasedClient).Lease()
	if lease.Role != "reins-staging-nodes" || lease.Namespace != activities.DefaultClusterNamespace {
		t.Errorf("lease %+v", lease)
	}
	t.Cleanup(func() {
		_, _ = stack.kc.CoreV1().Nodes().Patch(ctx, node, types.MergePatchType, []byte(`{"spec":{"unschedulable":false}}`), metav1.PatchOptions{})
	})
	if _, err := c.CoreV1().Nodes().Patch(ctx, node, types.MergePatchType, []byte(`{"spec":{"unschedulable":true}}`), metav1.PatchOptions{}); err != nil {
		t.Fatalf("node credential cannot cordon: %v", err)
	}
	if _, err := c.AppsV1().Deployments(ns).Patch(ctx, "web", types.MergePatchType, []byte(`{"spec":{"replicas":2}}`), metav1.PatchOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("node credential patching a Deployment: got %v, want Forbidden", err)
	}
	if err := c.CoreV1().Nodes().Delete(ctx, node, metav1.DeleteOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("node credential deleting a node: got %v, want Forbidden", err)
	}
	if err := release(ctx); err != nil {
		t.Fatal(err)
	}
	if leaseAlive(t, lease.LeaseID) {
		t.Error("node lease alive after release")
	}
	if keys := liveLeases(t, "reins-staging-nodes"); len(keys) > 0 {
		t.Errorf("Vault still holds leases of reins-staging-nodes: %v", keys)
	}
}

// leasesIn returns the leases that the remediation's Execute and Compensate
// results name (one with nothing to write minted none).
func leasesIn(t *testing.T, h *historypb.History) []remediation.LeaseInfo {
	t.Helper()
	scheduled := map[int64]string{}
	var out []remediation.LeaseInfo
	dc := converter.GetDefaultDataConverter()
	for _, ev := range h.Events {
		switch ev.EventType {
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
			scheduled[ev.EventId] = ev.GetActivityTaskScheduledEventAttributes().GetActivityType().GetName()
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
			a := ev.GetActivityTaskCompletedEventAttributes()
			name := scheduled[a.GetScheduledEventId()]
			if name != remediation.ActivityExecute && name != remediation.ActivityCompensate {
				continue
			}
			var res struct {
				Lease *remediation.LeaseInfo `json:"lease"`
			}
			if err := dc.FromPayloads(a.GetResult(), &res); err != nil {
				t.Fatal(err)
			}
			if res.Lease != nil {
				out = append(out, *res.Lease)
			}
		}
	}
	return out
}

// A remediation whose last step fails: every step and every compensation
// writes with its own credential, each revoked when it ends. Afterwards
// every token Vault minted for it is dead, Vault holds none of its leases,
// and its history, fetched through Temporal's API, contains none of the
// tokens.
func TestRemediationWithVaultCredentials(t *testing.T) {
	w := startVaultWorker(t, vaultWorkerConfig("testdata/allow-all"))
	ns := envNamespace(t, "it-vault", "staging")
	deployment(t, ns, "web", 2, "registry.example/web:v1")
	st := w.run(t, plan("staging",
		step(remediation.ActionScale, remediation.KindDeployment, ns, "web", replicas(3)),
		step(remediation.ActionSetImage, remediation.KindDeployment, ns, "web", remediation.Params{Container: "app", Image: "registry.example/web:v2"}),
		failing(ns, "web")))
	wantState(t, st, remediation.StateRolledBack)
	for i := range 2 {
		if st.Steps[i].State != remediation.StepCompensated {
			t.Errorf("step %d %s, want compensated", i, st.Steps[i].State)
		}
	}
	if got := specOf(getDeployment(t, ns, "web")); got.Replicas != 2 || got.Images[0] != "registry.example/web:v1" {
		t.Errorf("after the rollback: %+v", got)
	}

	h := fetchHistory(t, st.ID)
	leases := leasesIn(t, h)
	if len(leases) != 4 {
		t.Fatalf("%d leases in the history, want 4 (2 steps, 2 compensations): %+v", len(leases), leases)
	}
	minted := mintedIn(t, ns)
	byLease := map[string]mint{}
	for _, m := range minted {
		byLease[m.LeaseID] = m
	}
	for _, l := range leases {
		if _, ok := byLease[l.LeaseID]; !ok || !l.Revoked || l.Role != "reins-staging" || l.Namespace != ns {
			t.Errorf("lease %+v: minted %t", l, ok)
		}
	}
	// The failing step was refused before it wrote, and its undo found
	// nothing to write: neither minted a credential.
	if len(minted) != 4 {
		t.Errorf("Vault minted %d credentials for %s, want 4", len(minted), ns)
	}
	full, err := protojson.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	payloads := payloadText(h)
	for _, m := range minted {
		if strings.Contains(payloads, m.Token) || strings.Contains(string(full), m.Token) {
			t.Errorf("the token of lease %s is in the history", m.LeaseID)
		}
		if leaseAlive(t, m.LeaseID) {
			t.Errorf("lease %s alive after the remediation", m.LeaseID)
		}
		deadEverywhere(t, m.Token, ns)
	}
	if keys := liveLeases(t, "reins-staging"); len(keys) > 0 {
		t.Errorf("Vault still holds leases of reins-staging: %v", keys)
	}
}

// Vault stopped mid-remediation: the step that needs a credential does not
// act while Vault is down (its activity fails, retryably, and is retried with
// backoff); once Vault is back the step completes.
func TestVaultDownMidRemediation(t *testing.T) {
	w := startVaultWorker(t, vaultWorkerConfig(""))
	ns := envNamespace(t, "shop-vd", "production")
	deployment(t, ns, "checkout", 2, "registry.example/checkout:v1")
	p := plan("production",
		step(remediation.ActionScale, remediation.KindDeployment, ns, "checkout", replicas(3)),
		step(remediation.ActionSetImage, remediation.KindDeployment, ns, "checkout", remediation.Params{Container: "app", Image: "registry.example/checkout:v2"}))
	p.Requester = remediation.Requester{Kind: remediation.RequesterHuman, Name: "alice"}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	run, st := w.startAwaiting(t, ctx, p, 1)
	if st.Steps[0].State != remediation.StepDone {
		t.Fatalf("step 0 %s before Vault stops, want done", st.Steps[0].State)
	}
	before := getDeployment(t, ns, "checkout")

	stack.vault.Stop()
	vaultUp := false
	t.Cleanup(func() {
		if !vaultUp {
			restartVault(t)
		}
	})
	approval := remediation.Approval{
		Remediation: run.GetID(), Run: run.GetRunID(), StepDigest: st.Steps[1].Digest, Group: st.Steps[1].Decision.Group,
		Approver: remediation.Approver{ID: "bob", Source: "cli"}, Verdict: remediation.VerdictApprove, At: time.Now().UTC(),
	}
	if err := workflows.Approve(ctx, stack.client, approval.Sign("it", w.signer)); err != nil {
		t.Fatal(err)
	}
	var lastFailure string
	waitFor(t, "the step's activity to fail twice while Vault is down", func() (bool, error) {
		d, err := stack.client.DescribeWorkflow(ctx, run.GetID(), "")
		if err != nil {
			return false, err
		}
		for _, pa := range d.RawResponse.GetPendingActivities() {
			if pa.GetActivityType().GetName() == remediation.ActivityExecute && pa.GetAttempt() >= 3 {
				lastFailure = pa.GetLastFailure().GetMessage()
				return true, nil
			}
		}
		return false, nil
	})
	if !strings.Contains(lastFailure, "Vault") || !strings.Contains(lastFailure, "retried") {
		t.Errorf("last failure %q: want a retryable Vault error", lastFailure)
	}
	after := getDeployment(t, ns, "checkout")
	if after.Generation != before.Generation || specOf(after).Images[0] != "registry.example/checkout:v1" {
		t.Fatalf("the step acted while Vault was down: generation %d → %d, image %s", before.Generation, after.Generation, specOf(after).Images[0])
	}

	restartVault(t)
	vaultUp = true
	st = wantCompleted(t, ctx, run)
	if img := specOf(getDeployment(t, ns, "checkout")).Images[0]; img != "registry.example/checkout:v2" {
		t.Errorf("image %s after Vault came back", img)
	}
	for _, m := range mintedIn(t, ns) {
		deadEverywhere(t, m.Token, ns)
	}
	if keys := liveLeases(t, "reins-production"); len(keys) > 0 {
		t.Errorf("Vault still holds leases of reins-production: %v", keys)
	}
}

// restartVault starts the stopped dev server again and configures it anew
// (dev mode keeps nothing): same address, same root token, same worker
// AppRole credentials.
func restartVault(t testing.TB) {
	t.Helper()
	ctx := context.Background()
	if err := stack.vault.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := stack.vaultSetup.Apply(ctx); err != nil {
		t.Fatal(err)
	}
	if err := enableVaultAudit(ctx, stack.vaultSetup); err != nil {
		t.Fatal(err)
	}
}

// Every action and its undo works with nothing but per-step credentials:
// the step ClusterRoles (deploy/step-rbac.yaml) grant enough, and the worker's
// own identity writes nothing.
func TestEveryActionWithVaultCredentials(t *testing.T) {
	w := startVaultWorker(t, vaultWorkerConfig("testdata/allow-all"))
	ctx := context.Background()
	ns := envNamespace(t, "it-vault-all", "staging")
	deployment(t, ns, "api", 2, "registry.example/api:v1")
	deployment(t, ns, "web", 1, "registry.example/web:v1")
	pods, err := stack.kc.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=api"})
	if err != nil || len(pods.Items) != 2 {
		t.Fatalf("pods: %v %d", err, len(pods.Items))
	}
	a, b := pods.Items[0], pods.Items[1]
	node := unique("it-vault-node")
	if _, err := stack.kc.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: node, Annotations: map[string]string{devstack.KwokNodeAnnotation: devstack.KwokNodeAnnotationValue}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = stack.kc.CoreV1().Nodes().Delete(ctx, node, metav1.DeleteOptions{}) })
	before := specOf(getDeployment(t, ns, "web"))
	quarantined := func(pod string) bool {
		p, err := stack.kc.CoreV1().Pods(ns).Get(ctx, pod, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		_, npErr := stack.kc.NetworkingV1().NetworkPolicies(ns).Get(ctx, "reins-quarantine-"+pod, metav1.GetOptions{})
		return p.Labels[remediation.QuarantineLabel] != "" && npErr == nil
	}
	cordoned := func() bool {
		n, err := stack.kc.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return n.Spec.Unschedulable
	}

	st := w.run(t, plan("staging",
		step(remediation.ActionRolloutRestart, remediation.KindDeployment, ns, "web", remediation.Params{}),
		step(remediation.ActionQuarantinePod, remediation.KindPod, ns, a.Name, remediation.Params{}),
		step(remediation.ActionCordon, remediation.KindNode, "", node, remediation.Params{}),
		failing(ns, "api")))
	wantState(t, st, remediation.StateRolledBack)
	for i := range 3 {
		if st.Steps[i].State != remediation.StepCompensated {
			t.Errorf("step %d (%s): %s, want compensated (%s)", i, st.Steps[i].Description, st.Steps[i].State, st.Steps[i].Error)
		}
	}
	if got := specOf(getDeployment(t, ns, "web")); got.RestartedAt != before.RestartedAt {
		t.Errorf("restart not undone: %+v", got)
	}
	if quarantined(a.Name) || cordoned() {
		t.Errorf("undo incomplete: pod quarantined %t, node cordoned %t", quarantined(a.Name), cordoned())
	}

	st = w.run(t, plan("staging",
		step(remediation.ActionQuarantinePod, remediation.KindPod, ns, a.Name, remediation.Params{}),
		step(remediation.ActionDeletePod, remediation.KindPod, ns, b.Name, remediation.Params{}),
		step(remediation.ActionCordon, remediation.KindNode, "", node, remediation.Params{})))
	wantState(t, st, remediation.StateCompleted)
	if !quarantined(a.Name) || !cordoned() {
		t.Errorf("pod quarantined %t, node cordoned %t", quarantined(a.Name), cordoned())
	}
	if p, err := stack.kc.CoreV1().Pods(ns).Get(ctx, b.Name, metav1.GetOptions{}); err == nil && p.UID == b.UID && p.DeletionTimestamp == nil {
		t.Errorf("pod %s not deleted", b.Name)
	}
	for _, role := range []string{"reins-staging", "reins-staging-nodes"} {
		if keys := liveLeases(t, role); len(keys) > 0 {
			t.Errorf("Vault still holds leases of %s: %v", role, keys)
		}
	}
}

// The worker authenticates to Vault the three supported ways, each with only
// the reins-worker policy (deploy/vault-policy-worker.hcl): a token
// (development), AppRole, and Kubernetes auth with its own ServiceAccount.
func TestVaultAuthMethods(t *testing.T) {
	ctx := context.Background()
	ns := envNamespace(t, "it-auth", "staging")
	token, err := stack.vaultSetup.WorkerToken(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(token), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, auth := range []workers.VaultAuthConfig{
		{Method: vaultclient.MethodToken, TokenFile: tokenFile},
		{Method: vaultclient.MethodAppRole, RoleID: stack.vaultSetup.AppRoleRoleID, SecretIDFile: stack.vaultSetup.AppRoleSecretIDFile},
		{Method: vaultclient.MethodKubernetes, Role: devstack.VaultWorkerRole, JWTFile: stack.vaultSetup.WorkerTokenFile},
	} {
		t.Run(auth.Method, func(t *testing.T) {
			cfg := vaultWorkerConfig("")
			cfg.Vault.Auth = auth
			vc, err := cfg.Vault.NewVaultClient(stack.logger)
			if err != nil {
				t.Fatal(err)
			}
			creds := stepCredentials(t)
			creds.Vault = vc
			cred, err := creds.Mint(ctx, activities.Choice{Role: "reins-staging", Namespace: ns})
			if err != nil {
				t.Fatal(err)
			}
			if err := cred.Release(ctx); err != nil {
				t.Fatal(err)
			}
			// The policy allows reins' roles and nothing else.
			_, err = vc.Write(ctx, "sys/policies/acl/escalate", map[string]any{"policy": `path "*" { capabilities = ["sudo"] }`})
			if vaultclient.StatusCode(err) != 403 {
				t.Errorf("worker writing a policy: got %v, want 403", err)
			}
		})
	}
}

// codecClient is a Temporal client whose payloads go through cfg's codec.
func codecClient(t testing.TB, cfg workers.Config) sdkclient.Client {
	t.Helper()
	opts := sdkclient.Options{HostPort: stack.temporal.Address, Namespace: stack.temporal.Namespace, Logger: sdklog.NewStructuredLogger(stack.logger)}
	if err := cfg.TemporalOptions(&opts, stack.logger); err != nil {
		t.Fatal(err)
	}
	if opts.DataConverter == nil {
		t.Fatal("the codec is off")
	}
	c, err := sdkclient.Dial(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// With the payload codec on (Vault transit data keys) a remediation's full
// history, fetched through Temporal's API, holds none of the tokens minted
// for it and none of its plan's fields in plaintext, failures included; the
// gateway's codec endpoints decode what the worker encoded, for an
// authenticated caller only.
func TestNoSecretInHistory(t *testing.T) {
	cfg := vaultWorkerConfig("testdata/allow-all")
	cfg.Codec = workers.CodecConfig{TransitKey: devstack.CodecTransitKey}
	c := codecClient(t, cfg)
	cfg.Audit.File.Path = filepath.Join(t.TempDir(), "audit.jsonl")
	_, kube := workerKube(t)
	wk, err := workers.NewWorker(cfg, c, kube, stack.logger)
	if err != nil {
		t.Fatal(err)
	}
	wctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- wk.Run(wctx) }()
	t.Cleanup(func() { stop(); <-done })

	ns := envNamespace(t, "it-codec", "staging")
	deployment(t, ns, "web", 2, "registry.example/web:v1")
	marker := unique("plaintext-marker")
	image := "registry.example/web:" + marker
	p := plan("staging",
		step(remediation.ActionScale, remediation.KindDeployment, ns, "web", replicas(3)),
		step(remediation.ActionSetImage, remediation.KindDeployment, ns, "web", remediation.Params{Container: "app", Image: image}),
		step(remediation.ActionSetImage, remediation.KindDeployment, ns, "web", remediation.Params{Container: "container-" + marker, Image: image}))
	p.Explanation = "explanation " + marker
	for i := range p.Steps {
		p.Steps[i].Justification = "justification of the step " + marker
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	run, _, err := workflows.Start(ctx, c, cfg.TaskQueue, workflows.RemediationInput{Plan: p})
	if err != nil {
		t.Fatal(err)
	}
	st, err := workflows.Result(ctx, run)
	if err != nil {
		t.Fatal(err)
	}
	wantState(t, st, remediation.StateRolledBack) // the third step names no such container

	h := fetchHistory(t, st.ID) // through the plain client: what Temporal stores
	full, err := protojson.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	payloads := payloadText(h)
	if strings.Contains(payloads, marker) || strings.Contains(string(full), marker) {
		i := strings.Index(payloads+string(full), marker)
		t.Errorf("plan fields in plaintext in the history: …%s…", (payloads + string(full))[max(0, i-200):i+40])
	}
	minted := mintedIn(t, ns)
	if len(minted) != 4 {
		t.Errorf("Vault minted %d credentials, want 4 (2 steps, 2 undos)", len(minted))
	}
	for _, m := range minted {
		if strings.Contains(payloads, m.Token) || strings.Contains(string(full), m.Token) {
			t.Errorf("the token of lease %s is in the history", m.LeaseID)
		}
	}
	encrypted := 0
	var all []*commonpb.Payload
	for _, ev := range h.Events {
		walkPayloads(ev.ProtoReflect(), func(p *commonpb.Payload) {
			all = append(all, p)
			if string(p.Metadata[converter.MetadataEncoding]) == codec.Encoding {
				encrypted++
			}
		})
	}
	if encrypted == 0 {
		t.Fatal("no encrypted payload in the history")
	}

	// The gateway decodes them, for its token only.
	gwCfg := cfg
	gwCfg.Gateway.TokenFile = filepath.Join(t.TempDir(), "gateway-token")
	token := unique("gateway-token-0123456789")
	if err := os.WriteFile(gwCfg.Gateway.TokenFile, []byte(token), 0o600); err != nil {
		t.Fatal(err)
	}
	pc, err := gwCfg.PayloadCodec(stack.logger)
	if err != nil {
		t.Fatal(err)
	}
	gw, err := gateway.New(gateway.Options{Codec: pc, Token: token, CORSOrigins: []string{"http://127.0.0.1:8233"}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(gw)
	defer srv.Close()
	remote := converter.NewRemotePayloadCodec(converter.RemotePayloadCodecOptions{
		Endpoint:      srv.URL + "/codec",
		ModifyRequest: func(r *http.Request) error { r.Header.Set("Authorization", "Bearer "+token); return nil },
	})
	decoded, err := remote.Decode(all)
	if err != nil {
		t.Fatal(err)
	}
	var text strings.Builder
	for _, p := range decoded {
		if string(p.Metadata[converter.MetadataEncoding]) == codec.Encoding {
			t.Fatal("the gateway left a payload encrypted")
		}
		text.Write(p.Data)
	}
	for _, want := range []string{p.Explanation, p.Steps[0].Justification, image} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("decoded history lacks %q", want)
		}
	}
	// Decrypted, the history holds the plan but no credential: the scan above
	// could not have seen a token inside an encrypted payload.
	for _, m := range minted {
		if strings.Contains(text.String(), m.Token) {
			t.Errorf("the token of lease %s is in the decoded history", m.LeaseID)
		}
		if !strings.Contains(text.String(), m.LeaseID) {
			t.Errorf("the decoded history does not name lease %s, which its step used", m.LeaseID)
		}
	}
	body, err := protojson.Marshal(&commonpb.Payloads{Payloads: all[:1]})
	if err != nil {
		t.Fatal(err)
	}
	for _, auth := range []string{"", "Bearer wrong-token-0123456789"} {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/codec/decode", strings.NewReader(string(body)))
		req.Header.Set("Content-Type", "application/json")
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("decode with %q: %s, want 401", auth, resp.Status)
		}
	}
}

// Vault refusing a credential (the namespace is not in the plan's
// environment) fails the step at once, without retrying, and the steps
// before it are undone, each with a credential of its own.
func TestVaultRefusalCompensates(t *testing.T) {
	w := startVaultWorker(t, vaultWorkerConfig("testdata/allow-all"))
	ns := envNamespace(t, "it-refuse", "staging")
	other := envNamespace(t, "it-refuse", "production")
	deployment(t, ns, "web", 2, "registry.example/web:v1")
	deployment(t, other, "web", 2, "registry.example/web:v1")
	st := w.run(t, plan("staging",
		step(remediation.ActionScale, remediation.KindDeployment, ns, "web", replicas(3)),
		step(remediation.ActionScale, remediation.KindDeployment, other, "web", replicas(3))))
	wantState(t, st, remediation.StateRolledBack)
	if st.Steps[0].State != remediation.StepCompensated {
		t.Errorf("step 0 %s, want compensated", st.Steps[0].State)
	}
	if !strings.Contains(st.Steps[1].Error, "Vault refused") {
		t.Errorf("step 1 error %q", st.Steps[1].Error)
	}
	if got := *getDeployment(t, ns, "web").Spec.Replicas; got != 2 {
		t.Errorf("%s/web has %d replicas after the rollback", ns, got)
	}
	if got := *getDeployment(t, other, "web").Spec.Replicas; got != 2 {
		t.Errorf("%s/web has %d replicas: written without a credential", other, got)
	}
	// One attempt: the refusal is final.
	h := fetchHistory(t, st.ID)
	for _, ev := range h.Events {
		if a := ev.GetActivityTaskFailedEventAttributes(); a != nil {
			if a.GetRetryState() != enumspb.RETRY_STATE_NON_RETRYABLE_FAILURE || a.GetFailure().GetApplicationFailureInfo().GetType() != remediation.ErrForbidden {
				t.Errorf("failed activity: retry state %s, type %q", a.GetRetryState(), a.GetFailure().GetApplicationFailureInfo().GetType())
			}
		}
	}
	if len(mintedIn(t, other)) != 0 {
		t.Error("Vault minted a credential for the other environment's namespace")
	}
	if n := len(mintedIn(t, ns)); n != 2 {
		t.Errorf("%d credentials for %s, want 2 (the step and its undo)", n, ns)
	}
}

// The worker keeps its own Vault token alive with the API's lifetime watcher:
// a token of 6 seconds is renewed before it expires.
func TestVaultTokenRenewal(t *testing.T) {
	ctx := context.Background()
	root := vaultRoot(t)
	sec, err := root.Auth().Token().CreateWithContext(ctx, &vaultapi.TokenCreateRequest{
		Policies: []string{devstack.VaultWorkerRole}, TTL: "6s", ExplicitMaxTTL: "5m", Renewable: new(true),
	})
	if err != nil {
		t.Fatal(err)
	}
	token := sec.Auth.ClientToken
	created := time.Now()
	file := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(file, []byte(token), 0o600); err != nil {
		t.Fatal(err)
	}
	vc, err := vaultclient.New(vaultclient.Options{Addr: stack.vault.Addr, Method: vaultclient.MethodToken, TokenFile: file, Logger: stack.logger})
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- vc.Run(rctx) }()
	defer func() { cancel(); <-done }()
	waitFor(t, "the token renewed past its first expiry", func() (bool, error) {
		s, err := root.Auth().Token().LookupWithContext(ctx, token)
		if err != nil {
			return false, err
		}
		exp, err := s.TokenTTL()
		if err != nil {
			return false, err
		}
		// The TTL counts from the last renewal: past the creation's 6s.
		return time.Since(created) > 6*time.Second && exp > 0, nil
	})
	ns := envNamespace(t, "it-renew", "staging")
	creds := stepCredentials(t)
	creds.Vault = vc
	cred, err := creds.Mint(ctx, activities.Choice{Role: "reins-staging", Namespace: ns})
	if err != nil {
		t.Fatalf("mint with the renewed token: %v", err)
	}
	if err := cred.Release(ctx); err != nil {
		t.Fatal(err)
	}
}
