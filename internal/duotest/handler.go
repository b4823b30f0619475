package duotest

import (
	"crypto/hmac"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/mail"
	"net/url"
	"strings"
)

// maxBodyBytes bounds a request body; Duo's parameters are small.
const maxBodyBytes = 64 << 10

// duoError is Duo's error answer.
type duoError struct {
	status     int
	code       int
	msg        string
	detail     string
	retryAfter string // the Retry-After header, if any
}

func errMissingCredentials() *duoError {
	return &duoError{status: http.StatusUnauthorized, code: 40101, msg: "Missing request credentials"}
}

func errInvalidIKey() *duoError {
	return &duoError{status: http.StatusUnauthorized, code: 40102, msg: "Invalid integration key in request credentials"}
}

func errInvalidSignature() *duoError {
	return &duoError{status: http.StatusUnauthorized, code: 40103, msg: "Invalid signature in request credentials"}
}

func errBadTimestamp() *duoError {
	return &duoError{status: http.StatusUnauthorized, code: 40105, msg: "Bad request timestamp"}
}

func errMissingParam(name string) *duoError {
	return &duoError{status: http.StatusBadRequest, code: 40001, msg: "Missing required request parameters", detail: name}
}

func errInvalidParam(name string) *duoError {
	return &duoError{status: http.StatusBadRequest, code: 40002, msg: "Invalid request parameters", detail: name}
}

type endpoint struct {
	method string
	signed bool
	handle func(s *Server, r *http.Request, params url.Values) (any, *duoError)
}

var endpoints = map[string]endpoint{
	"/auth/v2/ping":        {http.MethodGet, false, (*Server).ping},
	"/auth/v2/check":       {http.MethodGet, true, (*Server).ping},
	"/auth/v2/preauth":     {http.MethodPost, true, (*Server).preauth},
	"/auth/v2/auth":        {http.MethodPost, true, (*Server).auth},
	"/auth/v2/auth_status": {http.MethodGet, true, (*Server).authStatus},
}

// ServeHTTP answers one request as Duo would and records it.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rec := Request{Method: r.Method, Path: r.URL.Path, UserAgent: r.UserAgent()}
	response, derr := s.answer(r, &rec)
	w.Header().Set("Content-Type", "application/json")
	if derr != nil && derr.retryAfter != "" {
		w.Header().Set("Retry-After", derr.retryAfter)
	}
	var body any
	if derr != nil {
		rec.HTTPStatus, rec.Code = derr.status, derr.code
		e := map[string]any{"stat": "FAIL", "code": derr.code, "message": derr.msg}
		if derr.detail != "" {
			e["message_detail"] = derr.detail
		}
		body = e
	} else {
		rec.HTTPStatus = http.StatusOK
		body = map[string]any{"stat": "OK", "response": response}
	}
	s.mu.Lock()
	s.requests = append(s.requests, rec)
	s.mu.Unlock()
	w.WriteHeader(rec.HTTPStatus)
	_ = json.NewEncoder(w).Encode(body)
}

func (s *Server) answer(r *http.Request, rec *Request) (any, *duoError) {
	params, err := readParams(r)
	rec.Params = params
	if err != nil {
		return nil, &duoError{status: http.StatusBadRequest, code: 40002, msg: "Invalid request parameters", detail: err.Error()}
	}
	s.mu.Lock()
	failWith, retryAfter, hang := s.failWith, s.retryAfter, s.hang
	s.mu.Unlock()
	if hang != nil {
		s.mu.Lock()
		s.hanging++
		s.mu.Unlock()
		defer func() {
			s.mu.Lock()
			s.hanging--
			s.mu.Unlock()
		}()
		select {
		case <-r.Context().Done():
			return nil, &duoError{status: http.StatusServiceUnavailable, code: 50301, msg: "Service unavailable", detail: "client gave up"}
		case <-hang:
		}
	}
	if failWith == http.StatusTooManyRequests {
		return nil, &duoError{status: failWith, code: 42901, msg: "Too Many Requests", retryAfter: retryAfter}
	}
	if failWith != 0 {
		return nil, &duoError{status: failWith, code: failWith * 100, msg: http.StatusText(failWith), retryAfter: retryAfter}
	}
	ep, ok := endpoints[r.URL.Path]
	if !ok {
		return nil, &duoError{status: http.StatusNotFound, code: 40401, msg: "Resource not found"}
	}
	if r.Method != ep.method {
		return nil, &duoError{status: http.StatusMethodNotAllowed, code: 40501, msg: "Method not allowed"}
	}
	if ep.signed {
		ikey, derr := s.verify(r, params)
		rec.IKey = ikey
		if derr != nil {
			return nil, derr
		}
	}
	return ep.handle(s, r, params)
}

// readParams reads the query of a GET and the form body of a POST.
func readParams(r *http.Request) (url.Values, error) {
	if r.Method != http.MethodPost {
		return url.ParseQuery(r.URL.RawQuery)
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/x-www-form-urlencoded") {
		return url.Values{}, fmt.Errorf("content type %q is not application/x-www-form-urlencoded", ct)
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBodyBytes+1))
	if err != nil {
		return url.Values{}, err
	}
	if len(body) > maxBodyBytes {
		return url.Values{}, fmt.Errorf("body larger than %d bytes", maxBodyBytes)
	}
	return url.ParseQuery(string(body))
}

// verify checks the Authorization and Date headers of a signed request and
// returns the integration key it names.
func (s *Server) verify(r *http.Request, params url.Values) (string, *duoError) {
	ikey, sig, ok := basicAuth(r.Header.Get("Authorization"))
	if !ok {
		return "", errMissingCredentials()
	}
	date := r.Header.Get("Date")
	if date == "" {
		return ikey, errMissingCredentials()
	}
	if !hmac.Equal([]byte(ikey), []byte(s.ikey)) {
		return ikey, errInvalidIKey()
	}
	sent, err := mail.ParseDate(date)
	if err != nil {
		return ikey, errBadTimestamp()
	}
	if d := s.now().Sub(sent); d > s.skew || d < -s.skew {
		return ikey, errBadTimestamp()
	}
	want := signature(s.skey, canonicalRequest(date, r.Method, r.Host, r.URL.Path, params))
	if !hmac.Equal([]byte(strings.ToLower(sig)), []byte(want)) {
		return ikey, errInvalidSignature()
	}
	return ikey, nil
}

// basicAuth splits "Basic base64(user:password)".
func basicAuth(header string) (user, password string, ok bool) {
	const prefix = "basic "
	if len(header) < len(prefix) || !strings.EqualFold(header[:len(prefix)], prefix) {
		return "", "", false
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(header[len(prefix):]))
	if err != nil {
		return "", "", false
	}
	user, password, ok = strings.Cut(string(raw), ":")
	if !ok || user == "" || password == "" {
		return "", "", false
	}
	return user, password, true
}

func (s *Server) ping(*http.Request, url.Values) (any, *duoError) {
	return map[string]any{"time": s.now().Unix()}, nil
}

type preauthDevice struct {
	Device       string   `json:"device"`
	Type         string   `json:"type"`
	Name         string   `json:"name,omitempty"`
	DisplayName  string   `json:"display_name"`
	Number       string   `json:"number,omitempty"`
	Capabilities []string `json:"capabilities"`
}

func (s *Server) preauth(r *http.Request, params url.Values) (any, *duoError) {
	username := params.Get("username")
	if username == "" {
		return nil, errMissingParam("username")
	}
	s.mu.Lock()
	u, known := s.users[username]
	var user User
	if known {
		user = *u
	}
	s.mu.Unlock()
	if !known {
		// Duo's default new user policy: require enrolment.
		user = User{Username: username, Preauth: PreauthEnroll}
	}
	out := map[string]any{"result": user.preauth(), "status_msg": user.statusMsg()}
	switch user.preauth() {
	case PreauthEnroll:
		out["enroll_portal_url"] = "https://" + r.Host + "/portal?code=" + url.QueryEscape(username)
	case PreauthAuth:
		devices := []preauthDevice{}
		for _, d := range user.Devices {
			devices = append(devices, preauthDevice{d.ID, d.Type, d.Name, d.DisplayName, d.Number, d.Capabilities})
		}
		out["devices"] = devices
	}
	return out, nil
}

func (s *Server) auth(_ *http.Request, params url.Values) (any, *duoError) {
	username := params.Get("username")
	if username == "" {
		return nil, errMissingParam("username")
	}
	factor := params.Get("factor")
	if factor == "" {
		return nil, errMissingParam("factor")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	u, known := s.users[username]
	if !known {
		return nil, errInvalidParam("username")
	}
	switch factor {
	case "push":
		return s.push(u, params)
	case "passcode":
		return s.passcode(u, params)
	}
	return nil, errInvalidParam("factor")
}

// push answers factor=push; s.mu is held.
func (s *Server) push(u *User, params url.Values) (any, *duoError) {
	device := params.Get("device")
	if device == "" {
		return nil, errMissingParam("device")
	}
	if u.preauth() == PreauthAuth {
		if _, ok := u.pushDevice(device); !ok {
			return nil, errInvalidParam("device")
		}
	}
	answer := u.pushAnswer()
	switch params.Get("async") {
	case "":
		return answer, nil
	case "1":
	default:
		return nil, errInvalidParam("async")
	}
	txid := randomTxid()
	pending := u.PendingPolls
	if u.preauth() != PreauthAuth {
		pending = 0
	}
	s.txs[txid] = &transaction{username: u.Username, answer: answer, pending: pending}
	return map[string]string{"txid": txid}, nil
}

// passcode answers factor=passcode; s.mu is held.
func (s *Server) passcode(u *User, params url.Values) (any, *duoError) {
	code := params.Get("passcode")
	if code == "" {
		return nil, errMissingParam("passcode")
	}
	switch u.preauth() {
	case PreauthAllow, PreauthDeny, PreauthEnroll:
		return u.pushAnswer(), nil
	}
	if u.Passcode != "" && hmac.Equal([]byte(code), []byte(u.Passcode)) {
		u.Passcode = "" // a passcode works once
		return authAnswer{"allow", "allow", "Success. Logging you in..."}, nil
	}
	return authAnswer{"deny", "deny", "Incorrect passcode. Please try again."}, nil
}

func (s *Server) authStatus(_ *http.Request, params url.Values) (any, *duoError) {
	txid := params.Get("txid")
	if txid == "" {
		return nil, errMissingParam("txid")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	tx, ok := s.txs[txid]
	if !ok {
		return nil, errInvalidParam("txid")
	}
	if tx.pending > 0 {
		tx.pending--
		return waitingAnswer, nil
	}
	return tx.answer, nil
}

func randomTxid() string {
	h := randomString(32, "0123456789abcdef")
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}
