//go:build tools

// Package tools keeps the controller's main package in this module's build list.
package tools

import _ "github.com/fluxcd/flagger/cmd/flagger"
