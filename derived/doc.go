// Package derived builds the DICOM objects radgate stores back into the
// scored study so that any PACS viewer shows the result: a Secondary Capture
// image (the heatmap, or the windowed radiograph, with the result burned in),
// a Comprehensive SR, and an Encapsulated PDF. The builders are pure: they
// take the scored source instance (Part 10, as stored, any transfer syntax)
// and the result, and return Part 10 bytes (Explicit VR Little Endian). No
// network.
//
// Every derived object gets Series and SOP Instance UIDs computed from the
// result id (see UIDsFor), so building the same result again gives the same
// instances and a PACS that receives them twice keeps one copy.
//
// Patient and study attributes (Patient Name, ID, Birth Date and Sex; Study
// Instance UID, Date, Time and ID, Accession Number, Referring Physician's
// Name) are copied from the source, so the objects file into the source's
// study. Text is written in UTF-8 (Specific Character Set ISO_IR 192).
package derived
