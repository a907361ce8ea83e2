package service

import (
	"time"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/config"
)

// waitFor returns the study wait of an order from orders.study_wait_overrides
// (0: orders.study_wait_window). The facility is the one the order's own
// names resolve to (in facilities, the list in service): the study, and
// its Institution Name, are not there yet.
func waitFor(cfg *config.Config, facilities *radgate.Facilities) func(radgate.OrderStatus) time.Duration {
	overrides := cfg.Orders.StudyWaitOverrides
	if len(overrides) == 0 {
		return nil
	}
	return func(st radgate.OrderStatus) time.Duration {
		class := radgate.PriorityClass(st.Priority)
		facility := st.FacilityID
		if facility == "" {
			facility = facilities.Resolve(st.Facility, "")
		}
		for _, o := range overrides {
			if o.Priority != "" && o.Priority != class {
				continue
			}
			if o.Facility != "" && o.Facility != facility {
				continue
			}
			if o.Procedure != "" && !hasCode(st.ProcedureCodes, o.Procedure) {
				continue
			}
			return o.Wait.D()
		}
		return 0
	}
}

func hasCode(codes []radgate.Coding, code string) bool {
	for _, c := range codes {
		if c.Code == code {
			return true
		}
	}
	return false
}

// stableAfter maps orders.stable_after to the pipeline's option, where 0
// means the default: 0 in the configuration means "at once".
func stableAfter(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}
