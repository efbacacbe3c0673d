-- scripts/bench.lua with a pause of DELAY_MS between two requests of each connection: a fixed
-- rate below the peak (wrk has no rate option; wrk2 is not packaged in Debian).
dofile("scripts/bench.lua")
delay = paced_delay
