package controllers

import (
	"context"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mfa-operator/mfa-operator/internal/hostname"
)

// index returns the claims of the bundle Secret key (get), indexed once
// per set of claims read.
func (b *bundleClaims) index(ctx context.Context, c client.Reader, key types.NamespacedName) (*hostname.Claims, error) {
	claims, err := b.get(ctx, c, key)
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.indexed == nil || !sameClaims(claims, b.indexedOf) {
		b.indexed, b.indexedOf = hostname.NewClaims(claims), claims
	}
	return b.indexed, nil
}

// sameClaims says whether a and b are the same slice: get returns the
// one it keeps for as long as the bundle's version is the same.
func sameClaims(a, b []hostname.Claim) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}
