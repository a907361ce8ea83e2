// Package radgate is radgate's small core: the contracts every part plugs
// into and the registry that names them.
//
// The contracts are plain types and interfaces: an order (OrderEvent,
// OrderStatus), what an intake hands orders to (Intake), an image archive
// (StudySource), a scoring engine (Engine), a result (Result) and a result
// destination (Sink). Each interface's doc comment says when its work counts
// as durable, which is when the stage that called it acknowledges its
// message.
//
// Adapters (adapters/fhirhttp, adapters/dicomweb, adapters/hl7v2, …)
// implement these contracts and register their destination types by name
// (RegisterSink); radgate serve and radgate check build every configured
// destination from the registry. This package imports nothing of radgate's:
// the pipeline (package pipeline), the broker (package broker), billing
// (package billing) and the route language (package routing) all depend on
// it, never the other way round. ARCHITECTURE.md draws the whole house.
package radgate
