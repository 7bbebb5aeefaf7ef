from promptlam.cli import main

raise SystemExit(main())
