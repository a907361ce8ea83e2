package config

import "time"

// Console configures the operator console under /console/ on the HTTP
// listener (package console).
type Console struct {
	// SessionTTL is how long a console session lasts after sign-in: the
	// cookie's Max-Age and the TTL of the radgate_console_sessions bucket.
	SessionTTL Duration `yaml:"session_ttl"`
}

// DefaultConsole is the console's default configuration.
func DefaultConsole() Console { return Console{SessionTTL: Duration(8 * time.Hour)} }

func validateConsole(c *Config, bad func(path, msg string)) {
	if c.Console.SessionTTL.D() < time.Minute {
		bad("console.session_ttl", "must be at least 1m (a session lasts this long after sign-in)")
	}
}
