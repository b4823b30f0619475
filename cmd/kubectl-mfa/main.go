// Command kubectl-mfa is the kubectl plugin of mfa-operator (`kubectl mfa
// users|reset|revoke|unlock`): what a helpdesk does to users' second
// factors, authorised by Kubernetes RBAC.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/mfa-operator/mfa-operator/internal/admin"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := admin.Main(ctx, "kubectl mfa", os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
