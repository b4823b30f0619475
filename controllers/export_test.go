package controllers

import (
	"context"

	"github.com/mfa-operator/mfa-operator/internal/policy"
)

// StoreBundle runs the read and write steps of a bundle reconcile with b
// as the bundle built.
func (r *BundleReconciler) StoreBundle(ctx context.Context, b *policy.Bundle) error {
	cur, _, err := r.readBundle(ctx)
	if err != nil {
		return err
	}
	return r.writeBundle(ctx, cur, b)
}

// BundleRead is the bundle a reconcile reads as in force (its "last good").
func (r *BundleReconciler) BundleRead(ctx context.Context) (*policy.Bundle, error) {
	_, b, err := r.readBundle(ctx)
	return b, err
}
