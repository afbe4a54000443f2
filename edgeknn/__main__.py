from edgeknn.cli import main

raise SystemExit(main())
