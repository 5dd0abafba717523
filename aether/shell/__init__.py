"""The intent shell: a person types what they want; the shell shows a plan of ABI calls,
asks before anything risky, runs it and records it.

``terminal``  the shell on a terminal (the console's, the host's); ``lineedit`` line editing
``session``   one person's session: plan, show, ask, run, record
``text``      what a typed line says (words and slots); ``planner`` the offline planner
``intents/``  every intent the offline planner understands, one module per topic
``model``     the model planner (with a model configured); ``plan`` plans and steps
``risk``      which calls need a yes; ``render`` results as a person reads them
``planbench`` the offline planner timed in the guest
"""
