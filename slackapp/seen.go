package slackapp

import (
	"sync"
	"time"
)

// seenSet remembers keys until they expire: the replay cache of signed
// requests and of Socket Mode envelopes. Its size is bounded: when it holds
// max live keys it refuses new ones (the caller fails closed). Safe for
// concurrent use.
type seenSet struct {
	mu      sync.Mutex
	max     int
	keys    map[string]time.Time // key → expiry
	sweepAt int                  // size at which expired keys are swept next
}

func newSeenSet(max int) *seenSet {
	return &seenSet{max: max, keys: map[string]time.Time{}, sweepAt: min(1024, max)}
}

// seenResult is what add found.
type seenResult int

const (
	seenNew seenResult = iota
	seenBefore
	seenFull
)

// add records key until expires, at now. It reports seenBefore when key is
// already there and unexpired, seenFull when the set is full of live keys.
func (s *seenSet) add(key string, expires, now time.Time) seenResult {
	s.mu.Lock()
	defer s.mu.Unlock()
	if exp, ok := s.keys[key]; ok && now.Before(exp) {
		return seenBefore
	}
	if len(s.keys) >= s.sweepAt {
		for k, exp := range s.keys {
			if !now.Before(exp) {
				delete(s.keys, k)
			}
		}
		// Sweep again when the live set has doubled: amortized O(1) per add.
		s.sweepAt = min(max(2*len(s.keys), 1024), s.max)
		if len(s.keys) >= s.max {
			return seenFull
		}
	}
	s.keys[key] = expires
	return seenNew
}

// len is how many keys are held (live or not yet swept).
func (s *seenSet) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.keys)
}
