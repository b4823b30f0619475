package webhook

import "net/http"

// registerChallengeRoutes is replaced by the challenge pages (challenge.go).
func (s *Server) registerChallengeRoutes(mux *http.ServeMux) {}
