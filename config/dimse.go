package config

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// DIMSE is radgate's own DICOM network node (PS3.7, PS3.8): the Storage SCP
// that modalities and PACS push images to (C-ECHO, C-STORE), and the
// destination of the C-MOVEs radgate asks of a DIMSE-only PACS. Callers are
// the facilities' ae_titles (and, where a facility lists networks, from
// those networks only): anyone else is rejected at association.
type DIMSE struct {
	// Listen is the host:port of the Storage SCP. Empty (the default) runs
	// none.
	Listen string `yaml:"listen"`
	// AETitle is radgate's AE title, the called AE title callers must use
	// (default RADGATE).
	AETitle string `yaml:"ae_title"`
	// TLS makes the Storage SCP DICOM TLS (PS3.15 B.9, BCP 195: TLS 1.2 or
	// later); client_auth require admits only callers with a certificate
	// signed by client_ca_file.
	TLS ServerTLS `yaml:"tls"`
	// MaxAssociations bounds the associations open at once (default 32),
	// MaxAssociationsPerCaller those of one calling AE title (default 8):
	// more are rejected with a reason (A-ASSOCIATE-RJ, local limit exceeded).
	MaxAssociations          int `yaml:"max_associations"`
	MaxAssociationsPerCaller int `yaml:"max_associations_per_caller"`
	// MaxPDULength is the largest PDU radgate reads, announced to callers
	// (default 256 KiB); a longer one aborts the association.
	MaxPDULength ByteSize `yaml:"max_pdu_length"`
	// MaxInstanceBytes bounds one stored instance (default 256 MiB): a
	// larger C-STORE is refused with an error status and nothing is kept.
	MaxInstanceBytes ByteSize `yaml:"max_instance_bytes"`
	// MinFreeBytes: while the image store has less room than this left
	// (retention.images.max_bytes less what it holds), new associations
	// are refused with a reason and nothing is half-written (default 1 GiB;
	// without a max_bytes only the store's own refusals count).
	MinFreeBytes ByteSize `yaml:"min_free_bytes"`
	// IdleTimeout aborts an association that sends nothing for this long
	// (default 60s); ARTIM bounds the wait for an A-ASSOCIATE-RQ after
	// connect and for the peer's close after a release (default 30s).
	IdleTimeout Duration `yaml:"idle_timeout"`
	ARTIM       Duration `yaml:"artim"`
	// AccessionSystem is the identifier system given to a pushed study's
	// Accession Number (0008,0050), so that it makes one order with the
	// EHR's or RIS's order of the same study (default: hl7v2.accession_system).
	AccessionSystem string `yaml:"accession_system"`
}

// DefaultDIMSE is the dimse section's defaults.
func DefaultDIMSE() DIMSE {
	return DIMSE{
		AETitle:                  "RADGATE",
		TLS:                      ServerTLS{ClientAuth: ClientCertNone},
		MaxAssociations:          32,
		MaxAssociationsPerCaller: 8,
		MaxPDULength:             256 << 10,
		MaxInstanceBytes:         256 << 20,
		MinFreeBytes:             1 << 30,
		IdleTimeout:              Duration(60 * time.Second),
		ARTIM:                    Duration(30 * time.Second),
	}
}

// EffectiveAccessionSystem is AccessionSystem, else hl7v2.accession_system.
func (c Config) EffectiveAccessionSystem() string {
	if c.DIMSE.AccessionSystem != "" {
		return c.DIMSE.AccessionSystem
	}
	return c.HL7v2.AccessionSystem
}

// CheckAETitle reports what makes s unfit as an AE title (PS3.5: 1 to 16
// characters of the default repertoire, no backslash or control character,
// not only spaces), or nil.
func CheckAETitle(s string) error {
	t := strings.TrimSpace(s)
	if t == "" || len(s) > 16 {
		return fmt.Errorf("%q is not an AE title (1 to 16 characters)", s)
	}
	for _, c := range s {
		if c < 0x20 || c > 0x7e || c == '\\' {
			return fmt.Errorf("AE title %q has a character outside the DICOM default repertoire or a backslash", s)
		}
	}
	return nil
}

func validateDIMSE(c *Config, bad func(path, msg string)) {
	d := c.DIMSE
	if d.Listen != "" {
		if err := checkHostPort(d.Listen); err != nil {
			bad("dimse.listen", err.Error())
		} else if d.Listen == c.Listen || d.Listen == c.HL7v2.Listen {
			bad("dimse.listen", fmt.Sprintf("%q is also the HTTP or HL7 v2 listen address", d.Listen))
		}
	}
	if err := CheckAETitle(d.AETitle); err != nil {
		bad("dimse.ae_title", err.Error())
	}
	if d.MaxAssociations <= 0 {
		bad("dimse.max_associations", "must be positive")
	}
	if d.MaxAssociationsPerCaller <= 0 {
		bad("dimse.max_associations_per_caller", "must be positive")
	} else if d.MaxAssociations > 0 && d.MaxAssociationsPerCaller > d.MaxAssociations {
		bad("dimse.max_associations_per_caller", fmt.Sprintf("%d is more than dimse.max_associations (%d)", d.MaxAssociationsPerCaller, d.MaxAssociations))
	}
	if d.MaxPDULength < 4096 || d.MaxPDULength > 1<<31-1 {
		bad("dimse.max_pdu_length", fmt.Sprintf("must be between 4 KiB and 2 GiB, got %d", d.MaxPDULength))
	}
	if d.MaxInstanceBytes <= 0 {
		bad("dimse.max_instance_bytes", "must be positive")
	}
	if d.MinFreeBytes < 0 {
		bad("dimse.min_free_bytes", "must not be negative")
	}
	if d.IdleTimeout <= 0 {
		bad("dimse.idle_timeout", "must be positive")
	}
	if d.ARTIM <= 0 {
		bad("dimse.artim", "must be positive")
	}
	if s := d.AccessionSystem; s != "" {
		if u, err := url.Parse(s); err != nil || u.Scheme == "" || strings.ContainsAny(s, " \t|") {
			bad("dimse.accession_system", fmt.Sprintf("%q is not an absolute URI (e.g. http://hospital.example.org/fhir/accession or urn:oid:1.2.3)", s))
		}
	}
	validateServerTLS("dimse", d.TLS, d.Listen, bad)
	validatePACSDIMSE(c, bad)
	if d.Listen != "" && len(c.Facilities) == 0 && c.PACS.DIMSE == nil {
		bad("dimse.listen", "the Storage SCP takes calls only from the facilities' ae_titles, and no facility is configured (add facilities with ae_titles)")
	}
}

// Retrieval methods of pacs.dimse.retrieve.
const (
	RetrieveCMove = "c-move"
	RetrieveCGet  = "c-get"
)

// PACSDIMSE is a PACS radgate reaches only over DIMSE (pacs.dimse): it asks
// for a study with C-FIND (study, series and image level, by Study
// Instance UID or Accession Number), then retrieves it with C-MOVE to
// radgate's own Storage SCP (dimse.listen; the PACS must know radgate's
// AE title, dimse.ae_title, with radgate's host and SCP port, as a
// C-MOVE destination and as a caller allowed to query) or with C-GET on the
// same association (the PACS must allow radgate's calling AE title to
// query and retrieve). What is retrieved is kept in radgate's image store
// (retention.images).
type PACSDIMSE struct {
	// Host and Port of the PACS's DICOM service.
	Host string `yaml:"host"`
	Port int    `yaml:"port"`
	// CalledAE is the PACS's AE title; CallingAE radgate's when it calls
	// (default: dimse.ae_title).
	CalledAE  string `yaml:"called_ae"`
	CallingAE string `yaml:"calling_ae"`
	// Retrieve is c-move (default) or c-get.
	Retrieve string `yaml:"retrieve"`
	// Timeout bounds connecting, association set-up and each wait on the
	// PACS (default: pacs.timeout).
	Timeout Duration `yaml:"timeout"`
	// MaxPDULength is the largest PDU radgate reads from the PACS
	// (default: dimse.max_pdu_length).
	MaxPDULength ByteSize `yaml:"max_pdu_length"`
	// TLS, when set (even empty: the system's roots), makes every
	// association with the PACS DICOM TLS (PS3.15 B.9, BCP 195: TLS 1.2 or
	// later), verifying the PACS's certificate against ca_file and the
	// system's roots, with a client certificate when cert_file and key_file
	// are set.
	TLS *ClientTLS `yaml:"tls,omitempty"`
}

// PACSDIMSE returns pacs.dimse with its defaults filled in, and whether it
// is set.
func (c Config) PACSDIMSE() (PACSDIMSE, bool) {
	if c.PACS.DIMSE == nil {
		return PACSDIMSE{}, false
	}
	d := *c.PACS.DIMSE
	if d.CallingAE == "" {
		d.CallingAE = c.DIMSE.AETitle
	}
	if d.Retrieve == "" {
		d.Retrieve = RetrieveCMove
	}
	if d.Timeout == 0 {
		d.Timeout = c.PACS.Timeout
	}
	if d.MaxPDULength == 0 {
		d.MaxPDULength = c.DIMSE.MaxPDULength
	}
	return d, true
}

// Addr is host:port of the PACS.
func (d PACSDIMSE) Addr() string { return net.JoinHostPort(d.Host, strconv.Itoa(d.Port)) }

func validatePACSDIMSE(c *Config, bad func(path, msg string)) {
	d, ok := c.PACSDIMSE()
	if !ok {
		return
	}
	if strings.TrimSpace(d.Host) == "" {
		bad("pacs.dimse.host", "must be set (the PACS's DICOM host name or address)")
	}
	if d.Port < 1 || d.Port > 65535 {
		bad("pacs.dimse.port", fmt.Sprintf("must be 1-65535, got %d", d.Port))
	}
	if err := CheckAETitle(d.CalledAE); err != nil {
		bad("pacs.dimse.called_ae", err.Error()+" (the PACS's AE title)")
	}
	if err := CheckAETitle(d.CallingAE); err != nil {
		bad("pacs.dimse.calling_ae", err.Error())
	}
	switch d.Retrieve {
	case RetrieveCMove:
		if c.DIMSE.Listen == "" {
			bad("pacs.dimse.retrieve", "c-move sends the study to radgate's own Storage SCP, and dimse.listen is not set (set it, or use retrieve: c-get)")
		}
	case RetrieveCGet:
	default:
		bad("pacs.dimse.retrieve", fmt.Sprintf("%q is not c-move or c-get", d.Retrieve))
	}
	if d.Timeout <= 0 {
		bad("pacs.dimse.timeout", "must be positive")
	}
	if d.MaxPDULength < 4096 || d.MaxPDULength > 1<<31-1 {
		bad("pacs.dimse.max_pdu_length", fmt.Sprintf("must be between 4 KiB and 2 GiB, got %d", d.MaxPDULength))
	}
	if t := d.TLS; t != nil && (t.CertFile == "") != (t.KeyFile == "") {
		bad("pacs.dimse.tls", "cert_file and key_file go together: set both or neither")
	}
}
