from raypod.cli import main

raise SystemExit(main())
