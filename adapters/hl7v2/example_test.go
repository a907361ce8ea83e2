package hl7v2_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/radgate/radgate/adapters/hl7v2"
)

func ExampleParse() {
	msg, err := hl7v2.ParseString("MSH|^~\\&|RIS|HOSP|RADGATE|HOSP|20240131142503||ORM^O01|MSG1|P|2.5.1\r" +
		"PID|1||MRN1^^^HOSP^MR~998877^^^NATID^NI\r" +
		"OBR|1|||36643-5^XR Chest 2 Views^LN|||||||||Cough \\T\\ fever\r")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(msg.Type(), msg.ControlID())
	fmt.Println(msg.Get("PID-3"), msg.Get("PID-3(2)-4"), msg.Count("PID-3"))
	fmt.Println(msg.Get("OBR-13"), "|", msg.GetRaw("OBR-13"))

	_, err = hl7v2.ParseString("MSH|^~\\&|A\rPID|1\rbad|x")
	fmt.Println(err)
	// Output:
	// ORM^O01 MSG1
	// MRN1 NATID 2
	// Cough & fever | Cough \T\ fever
	// segment 3: invalid segment ID "bad": want three capital letters or digits, starting with a letter
}

func ExampleNewACK() {
	msg, _ := hl7v2.ParseString("MSH|^~\\&|RIS|HOSP|RADGATE|HOSP|20240131142503||ORM^O01|MSG1|P|2.5.1\rPID|1\r")
	_, err := hl7v2.OrderEvent(msg)
	ack := hl7v2.NewACKWith(msg, hl7v2.ACKOptions{ControlID: "ACK1", Time: time.Date(2024, 1, 31, 14, 30, 0, 0, time.UTC)},
		hl7v2.AE, hl7v2.ErrorDetailOf(err))
	for _, s := range ack.All() {
		fmt.Println(s)
	}
	// Output:
	// MSH|^~\&|RADGATE|HOSP|RIS|HOSP|20240131143000+0000||ACK^O01^ACK|ACK1|P|2.5.1
	// MSA|AE|MSG1|PID-3: no patient identifier (101 Required field missing)
	// ERR||PID^1^3|101^Required field missing^HL70357|E||||PID-3: no patient identifier
}

// An MLLP server that accepts orders, and a client that sends one.
func ExampleServer() {
	ctx := context.Background()
	srv, _ := hl7v2.NewServer(hl7v2.ServerOptions{
		Addr: "127.0.0.1:0",
		Handler: func(ctx context.Context, msg *hl7v2.Message) *hl7v2.Message {
			ev, err := hl7v2.OrderEvent(msg)
			if err != nil {
				return hl7v2.NewACK(msg, hl7v2.AE, hl7v2.ErrorDetailOf(err))
			}
			// Publish ev durably here, then accept.
			_ = ev
			return hl7v2.NewACK(msg, hl7v2.AA)
		},
	})
	if err := srv.Start(ctx); err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Close(ctx)

	client, _ := hl7v2.NewClient(hl7v2.ClientOptions{Addr: srv.Addr().String(), MaxAttempts: 1})
	defer client.Close()
	msg, _ := hl7v2.ParseString("MSH|^~\\&|RIS|HOSP|RADGATE|HOSP|20240131142503||ORM^O01|MSG1|P|2.5.1\r" +
		"PID|1||MRN1^^^HOSP^MR\rORC|NW|PLC1\rOBR|1|PLC1||36643-5^XR Chest 2 Views^LN||||||||||||||ACC1\r")
	ack, err := client.Send(ctx, msg)
	fmt.Println(ack.Get("MSA-1"), ack.Get("MSA-2"), err)

	_ = msg.Set("OBR-18", "")
	_, err = client.Send(ctx, msg)
	fmt.Println(errors.Is(err, hl7v2.ErrApplicationError), err)
	// Output:
	// AA MSG1 <nil>
	// true HL7 acknowledgement AE for message "MSG1": OBR-18: no accession number (nor a Study Instance UID in ZDS-1) (101 Required field missing)
}
