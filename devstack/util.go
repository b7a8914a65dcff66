package devstack

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
)

// sortedKeys returns m's keys in order, so command lines are reproducible.
func sortedKeys[V any, K cmp.Ordered](m map[K]V) []K {
	return slices.Sorted(maps.Keys(m))
}

func errorsIsPortInUse(err error) bool { return errors.Is(err, errPortInUse) }

// httpGetOK returns a check that passes when GET url answers 200 OK.
func httpGetOK(client *http.Client, url string) func(context.Context) error {
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: %s: %s", url, resp.Status, body)
		}
		return nil
	}
}
