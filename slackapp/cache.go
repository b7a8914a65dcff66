package slackapp

import (
	"context"
	"sync"
	"time"
)

// ttlCache holds values fetched from Slack for a short while; concurrent
// requests for the same key share one fetch. Errors are not cached. At most
// max entries are kept (beyond it, values are returned but not cached).
// Safe for concurrent use.
type ttlCache[V any] struct {
	ttl time.Duration
	now func() time.Time
	max int

	mu      sync.Mutex
	entries map[string]*cacheEntry[V]
}

type cacheEntry[V any] struct {
	done    chan struct{} // closed when val, err and expires are set
	val     V
	err     error
	expires time.Time
}

func newTTLCache[V any](ttl time.Duration, max int, now func() time.Time) *ttlCache[V] {
	return &ttlCache[V]{ttl: ttl, now: now, max: max, entries: map[string]*cacheEntry[V]{}}
}

// get returns key's value, fetching it when it is not cached or expired.
func (c *ttlCache[V]) get(ctx context.Context, key string, fetch func(context.Context) (V, error)) (V, error) {
	c.mu.Lock()
	if e, ok := c.entries[key]; ok {
		select {
		case <-e.done:
			if c.now().Before(e.expires) {
				c.mu.Unlock()
				return e.val, nil
			}
		default:
			// Another caller is fetching it: wait for that fetch.
			c.mu.Unlock()
			select {
			case <-e.done:
				return e.val, e.err
			case <-ctx.Done():
				var zero V
				return zero, ctx.Err()
			}
		}
	}
	e := &cacheEntry[V]{done: make(chan struct{})}
	c.entries[key] = e
	c.mu.Unlock()

	v, err := fetch(ctx)

	c.mu.Lock()
	defer c.mu.Unlock()
	e.val, e.err = v, err
	e.expires = c.now().Add(c.ttl)
	close(e.done)
	if err != nil {
		delete(c.entries, key)
		return v, err
	}
	if len(c.entries) > c.max {
		now := c.now()
		for k, x := range c.entries {
			select {
			case <-x.done:
				if !now.Before(x.expires) {
					delete(c.entries, k)
				}
			default:
			}
		}
		if len(c.entries) > c.max {
			delete(c.entries, key)
		}
	}
	return v, nil
}
