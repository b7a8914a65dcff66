package slackapp

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/reins-dev/reins/remediation"
)

func usersInfo(w http.ResponseWriter, form url.Values) {
	users := map[string]map[string]any{
		"U0ALICE":  {"id": "U0ALICE", "name": "alice", "real_name": "Alice Liddell", "profile": map[string]any{"email": "Alice@Example.com", "real_name": "Alice Liddell"}},
		"U0NOMAIL": {"id": "U0NOMAIL", "name": "nomail", "profile": map[string]any{}},
		"U0GONE":   {"id": "U0GONE", "name": "gone", "deleted": true, "profile": map[string]any{"email": "gone@example.com"}},
		"U0BOT":    {"id": "U0BOT", "name": "bot", "is_bot": true, "profile": map[string]any{}},
	}
	u, ok := users[form.Get("user")]
	if !ok {
		writeJSON(w, map[string]any{"ok": false, "error": "user_not_found"})
		return
	}
	writeJSON(w, map[string]any{"ok": true, "user": u})
}

func groupMembers(w http.ResponseWriter, form url.Values) {
	members := map[string][]string{"S0SRE": {"U0ALICE", "U0BOB"}, "S0LEADS": {"U0CAROL"}}
	m, ok := members[form.Get("usergroup")]
	if !ok {
		writeJSON(w, map[string]any{"ok": false, "error": "no_such_subteam"})
		return
	}
	writeJSON(w, map[string]any{"ok": true, "users": m})
}

func TestDirectoryLookup(t *testing.T) {
	f := newFakeSlack(t, map[string]func(http.ResponseWriter, url.Values){"users.info": usersInfo})
	d, err := NewDirectory(f.api, DirectoryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	a, err := d.Lookup(ctx, "U0ALICE")
	if err != nil || a != (remediation.Approver{ID: "alice@example.com", Name: "Alice Liddell", Source: "slack"}) {
		t.Fatalf("alice: %+v %v", a, err)
	}
	// Without an e-mail address (the app lacks users:read.email), an
	// approver could not be told apart from the requester: refused.
	if a, err = d.Lookup(ctx, "U0NOMAIL"); !errors.Is(err, ErrNotApprover) || !strings.Contains(err.Error(), "users:read.email") {
		t.Fatalf("user without e-mail: %+v %v, want ErrNotApprover naming users:read.email", a, err)
	}
	for _, id := range []string{"U0GONE", "U0BOT", "U0NOBODY", "B0BOT", "alice"} {
		if a, err := d.Lookup(ctx, id); !errors.Is(err, ErrNotApprover) {
			t.Errorf("%s: %+v %v, want ErrNotApprover", id, a, err)
		}
	}
	// Cached: a second lookup does not call Slack.
	before := len(f.called("users.info"))
	if _, err := d.Lookup(ctx, "U0ALICE"); err != nil {
		t.Fatal(err)
	}
	if after := len(f.called("users.info")); after != before {
		t.Fatalf("cached lookup called Slack (%d → %d calls)", before, after)
	}
}

func TestDirectoryInGroup(t *testing.T) {
	f := newFakeSlack(t, map[string]func(http.ResponseWriter, url.Values){"usergroups.users.list": groupMembers})
	now := time.Unix(1_700_000_000, 0)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	d, err := NewDirectory(f.api, DirectoryOptions{
		Groups: map[string]Group{"sre": {Usergroup: "S0SRE"}, "leads": {Usergroup: "S0LEADS"}, "ghost": {Usergroup: "S0GHOST"}, "chan-only": {Channel: "C0X"}},
		TTL:    30 * time.Second,
		Now:    clock,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, c := range []struct {
		group, user string
		want        bool
	}{{"sre", "U0ALICE", true}, {"sre", "U0CAROL", false}, {"leads", "U0CAROL", true}, {"leads", "U0ALICE", false}} {
		if got, err := d.InGroup(ctx, c.group, c.user); err != nil || got != c.want {
			t.Errorf("%s in %s: %v %v, want %v", c.user, c.group, got, err, c.want)
		}
	}
	if n := len(f.called("usergroups.users.list")); n != 2 {
		t.Fatalf("%d membership calls for two groups", n)
	}
	for _, g := range []string{"nobody", "chan-only"} {
		if ok, err := d.InGroup(ctx, g, "U0ALICE"); ok || !errors.Is(err, ErrUnknownGroup) {
			t.Errorf("group %s: %v %v, want ErrUnknownGroup", g, ok, err)
		}
	}
	if ok, err := d.InGroup(ctx, "ghost", "U0ALICE"); ok || err == nil {
		t.Errorf("a user group Slack does not know: %v %v", ok, err)
	}
	// After the TTL, membership is asked again (someone may have left).
	mu.Lock()
	now = now.Add(31 * time.Second)
	mu.Unlock()
	if _, err := d.InGroup(ctx, "sre", "U0ALICE"); err != nil {
		t.Fatal(err)
	}
	// ghost's failure was not cached: 2 groups + ghost + sre again.
	if n := len(f.called("usergroups.users.list")); n != 4 {
		t.Fatalf("%d membership calls, want 4", n)
	}
}

// Concurrent clicks share one membership call, and the cache is safe under
// the race detector.
func TestDirectoryConcurrent(t *testing.T) {
	release := make(chan struct{})
	f := newFakeSlack(t, map[string]func(http.ResponseWriter, url.Values){
		"usergroups.users.list": func(w http.ResponseWriter, form url.Values) { <-release; groupMembers(w, form) },
		"users.info":            usersInfo,
	})
	d, _ := NewDirectory(f.api, DirectoryOptions{Groups: map[string]Group{"sre": {Usergroup: "S0SRE"}}})
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for range 16 {
		wg.Go(func() {
			ok, err := d.InGroup(context.Background(), "sre", "U0ALICE")
			if err != nil || !ok {
				errs <- errors.Join(err, errors.New("alice not in sre"))
			}
		})
		wg.Go(func() {
			if _, err := d.Lookup(context.Background(), "U0ALICE"); err != nil {
				errs <- err
			}
		})
	}
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := len(f.called("usergroups.users.list")); n != 1 {
		t.Fatalf("%d membership calls for 16 concurrent clicks", n)
	}
}

// Callers of a key being fetched wait for that fetch, or for their own
// context; an error is not cached.
func TestTTLCacheSharesFetches(t *testing.T) {
	now := time.Unix(0, 0)
	c := newTTLCache[int](time.Minute, 10, func() time.Time { return now })
	started, release := make(chan struct{}), make(chan struct{})
	fetches := 0
	fetch := func(context.Context) (int, error) {
		fetches++
		close(started)
		<-release
		return 42, nil
	}
	first := make(chan int)
	go func() { v, _ := c.get(context.Background(), "k", fetch); first <- v }()
	<-started
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.get(ctx, "k", fetch); !errors.Is(err, context.Canceled) {
		t.Fatalf("waiter with a cancelled context: %v", err)
	}
	waiter := make(chan int)
	go func() { v, _ := c.get(context.Background(), "k", fetch); waiter <- v }()
	close(release)
	if a, b := <-first, <-waiter; a != 42 || b != 42 || fetches != 1 {
		t.Fatalf("values %d %d after %d fetches", a, b, fetches)
	}
	boom := errors.New("boom")
	if _, err := c.get(context.Background(), "e", func(context.Context) (int, error) { return 0, boom }); !errors.Is(err, boom) {
		t.Fatal(err)
	}
	if v, err := c.get(context.Background(), "e", func(context.Context) (int, error) { return 7, nil }); err != nil || v != 7 {
		t.Fatalf("error was cached: %d %v", v, err)
	}
	// Past max entries, values are served but not kept.
	for i := range 20 {
		k := string(rune('a' + i))
		if _, err := c.get(context.Background(), k, func(context.Context) (int, error) { return i, nil }); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(c.entries); n > 10 {
		t.Fatalf("%d entries cached, max 10", n)
	}
}
