package duotest

// PushOutcome is how a scripted user answers a push.
type PushOutcome string

const (
	// PushApprove: the user approves (result allow, status allow).
	PushApprove PushOutcome = "approve"
	// PushDeny: the user denies (result deny, status deny).
	PushDeny PushOutcome = "deny"
	// PushTimeout: the user does not answer in time (result deny, status timeout).
	PushTimeout PushOutcome = "timeout"
	// PushFraud: the user reports the push as fraud (result deny, status fraud).
	PushFraud PushOutcome = "fraud"
)

// Preauth results a scripted user gets.
const (
	PreauthAuth   = "auth"
	PreauthAllow  = "allow"
	PreauthDeny   = "deny"
	PreauthEnroll = "enroll"
)

// The scripted users every server starts with.
const (
	// UserApprove has a phone with push, SMS, phone call and Duo Mobile
	// passcodes; approves pushes after ApprovePolls waiting answers;
	// ValidPasscode works once.
	UserApprove = "approve"
	// UserDeny denies pushes.
	UserDeny = "deny"
	// UserTimeout lets pushes time out.
	UserTimeout = "timeout"
	// UserFraud reports pushes as fraud.
	UserFraud = "fraud"
	// UserBypass is in bypass status: preauth allow.
	UserBypass = "bypass"
	// UserEnroll has no device: preauth enroll, with an enrolment portal URL.
	UserEnroll = "enroll"
	// UserLockedOut is locked out: preauth deny.
	UserLockedOut = "locked-out"
	// UserNoPush has a landline (phone calls and SMS passcodes) but no
	// push; ValidPasscode works once.
	UserNoPush = "no-push"

	// ValidPasscode is the passcode UserApprove and UserNoPush may use once.
	ValidPasscode = "314159"
	// ApprovePolls is how many auth_status answers say "waiting" before
	// UserApprove's push is approved.
	ApprovePolls = 2
)

// Device is one of a scripted user's devices, as preauth reports it.
type Device struct {
	ID           string
	Type         string
	Name         string
	DisplayName  string
	Number       string
	Capabilities []string
}

// User is a scripted Duo user.
type User struct {
	Username string
	// Preauth is auth (the default), allow, deny or enroll.
	Preauth string
	// StatusMsg is preauth's status_msg; a fitting default when empty.
	StatusMsg string
	Devices   []Device
	// Push is how the user answers a push (the default: approve).
	Push PushOutcome
	// PendingPolls is how many auth_status answers say "waiting" before
	// the push outcome.
	PendingPolls int
	// Passcode is a passcode Duo accepts once; none when empty.
	Passcode string
}

var phone = Device{
	ID:           "DPFZRS9FB0D46QFTM891",
	Type:         "phone",
	Number:       "XXX-XXX-0100",
	DisplayName:  "iOS (XXX-XXX-0100)",
	Capabilities: []string{"auto", "push", "sms", "phone", "mobile_otp"},
}

var landline = Device{
	ID:           "DPV1ESQ8ZP3JGBCRKSN1",
	Type:         "phone",
	Number:       "XXX-XXX-0199",
	DisplayName:  "Landline (XXX-XXX-0199)",
	Capabilities: []string{"auto", "sms", "phone"},
}

func defaultUsers() []User {
	return []User{
		{Username: UserApprove, Devices: []Device{phone}, Push: PushApprove, PendingPolls: ApprovePolls, Passcode: ValidPasscode},
		{Username: UserDeny, Devices: []Device{phone}, Push: PushDeny, PendingPolls: 1},
		{Username: UserTimeout, Devices: []Device{phone}, Push: PushTimeout, PendingPolls: 1},
		{Username: UserFraud, Devices: []Device{phone}, Push: PushFraud, PendingPolls: 1},
		{Username: UserBypass, Preauth: PreauthAllow},
		{Username: UserEnroll, Preauth: PreauthEnroll},
		{Username: UserLockedOut, Preauth: PreauthDeny},
		{Username: UserNoPush, Devices: []Device{landline}, Passcode: ValidPasscode},
	}
}

func (u *User) statusMsg() string {
	if u.StatusMsg != "" {
		return u.StatusMsg
	}
	switch u.preauth() {
	case PreauthAllow:
		return "Allowing unknown user"
	case PreauthDeny:
		return "Your account is disabled."
	case PreauthEnroll:
		return "Enroll an authentication device to proceed"
	}
	return "Account is active"
}

func (u *User) preauth() string {
	if u.Preauth == "" {
		return PreauthAuth
	}
	return u.Preauth
}

func (u *User) pushDevice(device string) (Device, bool) {
	for _, d := range u.Devices {
		if (device == "auto" || device == d.ID) && d.can("push") {
			return d, true
		}
	}
	return Device{}, false
}

func (d Device) can(capability string) bool {
	for _, c := range d.Capabilities {
		if c == capability {
			return true
		}
	}
	return false
}

// authAnswer is the response member of a final /auth or /auth_status answer.
type authAnswer struct {
	Result    string `json:"result"`
	Status    string `json:"status"`
	StatusMsg string `json:"status_msg"`
}

// pushAnswer is the final answer to a push, once the user has "answered".
func (u *User) pushAnswer() authAnswer {
	switch u.preauth() {
	case PreauthAllow:
		return authAnswer{"allow", "bypass", "Allowing unknown user"}
	case PreauthDeny:
		return authAnswer{"deny", "locked_out", u.statusMsg()}
	case PreauthEnroll:
		return authAnswer{"deny", "enroll", u.statusMsg()}
	}
	switch u.Push {
	case PushDeny:
		return authAnswer{"deny", "deny", "Login request denied."}
	case PushTimeout:
		return authAnswer{"deny", "timeout", "Login request timed out."}
	case PushFraud:
		return authAnswer{"deny", "fraud", "Login request reported as fraudulent."}
	}
	return authAnswer{"allow", "allow", "Success. Logging you in..."}
}

var waitingAnswer = authAnswer{"waiting", "pushed", "Pushed a login request to your device..."}
