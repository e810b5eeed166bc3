"""The same shop as microservices and as a modular monolith, measured side by side (issue 21).

- compare.py   `chaoslab topologies compare`: a lab of each topology, one after the other, the same scenarios on
               both, one side-by-side result with the ratios
- measure.py   what a topology costs and how its clients fare: CPU, memory (PSS), listening ports of its
               processes; customers signed up; orders at a fixed rate (open loop), at saturation (closed loop),
               and the shop's journeys at a fixed rate, each answer kept, for faults and restarts
"""
