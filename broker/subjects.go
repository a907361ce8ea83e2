package broker

import "strings"

// The subjects of the three work streams carry the order's priority class
// first (each stage's urgent consumer filters on it) and the order's
// facility next (a site's permissions and the fairness of the router and
// inference consumers go by it):
//
//	radgate.orders.<class>.<facility>.<source>
//	radgate.jobs.<class>.<facility>.<engine>
//	radgate.results.<dest>.<class>.<facility>.<engine>
//
// <facility> is Token(the order's configured facility id); an order with no
// configured facility has NoFacility. Every token is made safe with Token,
// so a subject of each stream has exactly its number of tokens.

// NoFacility is the facility token of an order no configured facility
// claims (Token("")).
const NoFacility = "_"

// OrderSubject is the ORDERS subject of an intake event of priority class
// class (radgate.PriorityClass), from facility, received by source.
func OrderSubject(class, facility, source string) string {
	return SubjectOrders + Token(class) + "." + Token(facility) + "." + Token(source)
}

// JobSubject is the JOBS subject of a scoring job of class for facility's
// order, for engine.
func JobSubject(class, facility, engine string) string {
	return SubjectJobs + Token(class) + "." + Token(facility) + "." + Token(engine)
}

// ResultSubject is the RESULTS subject of engine's result for destination
// dest, of class, for facility's order.
func ResultSubject(dest, class, facility, engine string) string {
	return SubjectResults + Token(dest) + "." + Token(class) + "." + Token(facility) + "." + Token(engine)
}

// FacilitySubjects are the subject filters that hold exactly facility's
// orders, jobs and results (a site's permissions).
func FacilitySubjects(facility string) []string {
	f := Token(facility)
	return []string{SubjectOrders + "*." + f + ".>", SubjectJobs + "*." + f + ".>", SubjectResults + "*.*." + f + ".>"}
}

// FacilityOfSubject returns the facility token of an ORDERS, JOBS or
// RESULTS subject (NoFacility for an order with none); ok is false for any
// other subject, including one of the layout before facilities (state
// version 1).
func FacilityOfSubject(subject string) (facility string, ok bool) {
	toks, i := strings.Split(subject, "."), 0
	switch {
	case strings.HasPrefix(subject, SubjectOrders), strings.HasPrefix(subject, SubjectJobs):
		if len(toks) != 5 {
			return "", false
		}
		i = 3
	case strings.HasPrefix(subject, SubjectResults):
		if len(toks) != 6 {
			return "", false
		}
		i = 4
	default:
		return "", false
	}
	for _, t := range toks {
		if t == "" {
			return "", false
		}
	}
	return toks[i], true
}

// ClassOfSubject returns the priority class token of an ORDERS, JOBS or
// RESULTS subject of the current layout; ok as for FacilityOfSubject.
func ClassOfSubject(subject string) (class string, ok bool) {
	if _, ok := FacilityOfSubject(subject); !ok {
		return "", false
	}
	toks := strings.Split(subject, ".")
	if strings.HasPrefix(subject, SubjectResults) {
		return toks[3], true
	}
	return toks[2], true
}
