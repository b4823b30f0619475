// Command mfa-operator is one binary with two modes:
//
//	mfa-operator controller   (default) reconciles MFAPolicy and MFAProvider,
//	                          compiles the bundle and runs the challenge server
//	mfa-operator webhook      the challenge server the front door asks
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	args := os.Args[1:]
	mode := "controller"
	if len(args) > 0 && (args[0] == "controller" || args[0] == "webhook") {
		mode, args = args[0], args[1:]
	} else if len(args) > 0 && (args[0] == "help" || args[0] == "-h" || args[0] == "--help") {
		fmt.Fprintln(os.Stderr, "usage: mfa-operator [controller|webhook] [flags]  (mfa-operator MODE -h lists the flags)")
		return
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	var err error
	switch mode {
	case "controller":
		err = runController(ctx, args)
	case "webhook":
		err = runWebhook(ctx, args)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "mfa-operator %s: %v\n", mode, err)
		os.Exit(1)
	}
}
