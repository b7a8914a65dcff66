# reins-worker: what a reins worker (and the gateway's codec) may do in Vault.
# The token's own renewal and lookup come with Vault's default policy.

# Mint a step credential from reins' roles (deploy/vault-roles.yaml).
path "kubernetes/creds/reins-*" {
  capabilities = ["update"]
}

# Revoke those credentials' leases, and no other lease.
path "sys/leases/revoke/kubernetes/creds/reins-*" {
  capabilities = ["update"]
}

# The payload codec's data keys: new ones, and unwrapping the ones in payloads.
path "transit/datakey/plaintext/reins-codec" {
  capabilities = ["update"]
}
path "transit/decrypt/reins-codec" {
  capabilities = ["update"]
}
