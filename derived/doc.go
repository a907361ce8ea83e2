// Package derived builds the DICOM objects radgate stores back into the
// scored study so that any PACS viewer shows the result: a Secondary Capture
// image (the heatmap, or the windowed radiograph, with the result burned in),
// a Comprehensive 3D SR (TID 1500, as IHE AI Results reads it), an
// Encapsulated PDF, a Parametric Map of the class activation map, and the
// IHE IOCM rejection note (Key Object Selection) that withdraws a revision's
// objects when it is amended or retracted. The builders are pure: they
// take the scored source instance (Part 10, as stored, any transfer syntax)
// and the result, and return Part 10 bytes (Explicit VR Little Endian). No
// network.
//
// Every derived object gets Series and SOP Instance UIDs computed from the
// result id and revision (see UIDsFor), so building the same result again
// gives the same instances and a PACS that receives them twice keeps one
// copy; a new revision gets new instances in the same series.
//
// Patient and study attributes (Patient Name, ID, Birth Date, Sex and Age;
// Study Instance UID, Date, Time and ID, Accession Number, Referring
// Physician's Name, Study Description; and the Institution Name) are
// copied from the source, so the objects file into the source's study —
// but only values valid for their VR (PS3.5 6.2): an
// invalid one (a Birth Date that is not a date, an Age of "62") is written
// empty when the attribute is Type 2, left out when Type 3, and logged
// through Input.Logger by tag and keyword, never by value. Every object
// carries a Contributing Equipment Sequence item naming the algorithm
// (IHE AI Results). Text is written in UTF-8 (Specific Character Set
// ISO_IR 192): the copied text is decoded by the source's own Specific
// Character Set (ISO 2022 IR 87 kanji, ISO 2022 IR 13 half-width katakana,
// ISO_IR 192, the ISO 8859 sets; see package dicomcs), and UTF-8 holds it
// beside radgate's own text (the disclaimer, the SR content), which an
// ISO 2022 IR 87 object could not always represent.
package derived
