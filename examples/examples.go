// Package examples holds sample plans: the one `reins dev` runs, and the ones
// the README shows. They are plain JSON files; the package embeds them so the
// binary can run the demo from anywhere.
package examples

import _ "embed"

// CheckoutRollback rolls shop/checkout back to its previous image and scales
// it from 3 to 6 replicas (examples/checkout-rollback.json).
//
//go:embed checkout-rollback.json
var CheckoutRollback []byte
