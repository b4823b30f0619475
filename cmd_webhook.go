package main

import (
	"context"
	"errors"
)

func runWebhook(ctx context.Context, args []string) error {
	return errors.New("not implemented")
}
