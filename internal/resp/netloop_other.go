//go:build !linux

package resp

import "net"

// netLoop is Linux-only; elsewhere every connection has a goroutine.
type netLoop struct{}

func (s *Server) startLoops() {}

func (s *Server) adopt(*session, net.Conn) bool { return false }

func (s *Server) stopLoops() {}
