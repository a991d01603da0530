//go:build !linux

package main

// settle is a no-op where syncfs does not exist.
func settle(string) {}
