package duo

import (
	"net/url"
	"slices"
)

// Preauth results: what Duo wants done with a user.
const (
	// PreauthAuth: the user must answer a second factor.
	PreauthAuth = "auth"
	// PreauthAllow: the user is let through without a second factor
	// (bypass status, or an account policy that allows it).
	PreauthAllow = "allow"
	// PreauthDeny: the user is not allowed in (locked out, denied by policy).
	PreauthDeny = "deny"
	// PreauthEnroll: the user has no device yet and must enrol at
	// EnrollPortalURL.
	PreauthEnroll = "enroll"
)

// Auth results.
const (
	ResultAllow   = "allow"
	ResultDeny    = "deny"
	ResultWaiting = "waiting"
)

// Device capabilities Duo reports.
const (
	CapabilityPush      = "push"
	CapabilitySMS       = "sms"
	CapabilityPhone     = "phone"
	CapabilityMobileOTP = "mobile_otp"
)

// DeviceAuto lets Duo pick the user's first device able to answer.
const DeviceAuto = "auto"

// PreauthResult is Duo's answer to /auth/v2/preauth.
type PreauthResult struct {
	// Result is auth, allow, deny or enroll (the Preauth* constants).
	Result string
	// StatusMsg is Duo's human-readable message, e.g. "Account is active".
	StatusMsg string
	// EnrollPortalURL is where the user enrols when Result is enroll.
	EnrollPortalURL string
	// Devices are the user's devices when Result is auth.
	Devices []Device
}

// CanPush reports whether any device of the user accepts a push.
func (r *PreauthResult) CanPush() bool {
	return slices.ContainsFunc(r.Devices, func(d Device) bool { return d.Can(CapabilityPush) })
}

// Device is one of the user's Duo devices.
type Device struct {
	// ID is Duo's device identifier, e.g. DPFZRS9FB0D46QFTM891.
	ID string
	// Type is phone or token.
	Type string
	// Name is the user's name for the device, if any.
	Name string
	// DisplayName is Duo's label for the device, e.g. "iOS (XXX-XXX-0100)".
	DisplayName string
	// Number is the masked phone number, if any.
	Number string
	// Capabilities are among push, sms, phone, mobile_otp (and auto).
	Capabilities []string
}

// Can reports whether the device has the capability.
func (d Device) Can(capability string) bool { return slices.Contains(d.Capabilities, capability) }

// Label is the best name to show for the device.
func (d Device) Label() string {
	switch {
	case d.DisplayName != "":
		return d.DisplayName
	case d.Name != "":
		return d.Name
	case d.Number != "":
		return d.Number
	}
	return d.ID
}

// PushRequest asks Duo to send a push to a user's device (asynchronously).
type PushRequest struct {
	// Username is the Duo username. Required.
	Username string
	// IPAddr is the client's IP address, shown to the user and used by Duo
	// policies. Optional; when set it must be an IP address.
	IPAddr string
	// Device is a device ID or DeviceAuto (the default when empty).
	Device string
	// PushInfo is shown in Duo Mobile, e.g. {"app": ["admin.example.com"]}.
	// It is URL-encoded into Duo's pushinfo parameter (under 20,000 bytes).
	PushInfo url.Values
	// Type replaces "Login" in "Login request" on the device. Optional.
	Type string
	// DisplayUsername is shown in Duo Mobile instead of the Duo username.
	// Optional.
	DisplayUsername string
}

// AuthResult is the outcome of /auth/v2/auth (passcode) or
// /auth/v2/auth_status (push).
type AuthResult struct {
	// Result is allow, deny or waiting (the Result* constants).
	Result string
	// Status is Duo's detail: allow, bypass, deny, fraud, timeout, pushed,
	// sent, calling, answered, locked_out, ...
	Status string
	// StatusMsg is Duo's human-readable message.
	StatusMsg string
}

// Allowed reports whether Duo accepted the second factor.
func (r *AuthResult) Allowed() bool { return r.Result == ResultAllow }

// Waiting reports whether the user has not answered yet.
func (r *AuthResult) Waiting() bool { return r.Result == ResultWaiting }
