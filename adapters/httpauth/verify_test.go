package httpauth

import (
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate/config"
)

// Verify checks a token as the middleware does, roles included; mode none
// verifies nothing and says so through Open.
func TestVerifyAndOpen(t *testing.T) {
	f := filepath.Join(t.TempDir(), "tokens")
	require.NoError(t, os.WriteFile(f, []byte("ops tok-ops viewer,operator\n"), 0o600))
	a, err := New(config.IntakeAuth{Mode: config.AuthStatic, TokensFile: f}, Options{})
	require.NoError(t, err)
	assert.False(t, a.Open())
	r := httptest.NewRequest("POST", "/console/signin", nil)
	p, err := a.Verify(r, "tok-ops")
	require.NoError(t, err)
	assert.Equal(t, "ops", p.Name)
	assert.True(t, p.Has(RoleOperator))
	assert.False(t, p.Has(RolePHI))
	_, err = a.Verify(r, "nope")
	assert.EqualError(t, err, "unknown token")

	none, err := New(config.IntakeAuth{Mode: config.AuthNone}, Options{})
	require.NoError(t, err)
	assert.True(t, none.Open())
	_, err = none.Verify(r, "tok-ops")
	assert.Error(t, err)
}
