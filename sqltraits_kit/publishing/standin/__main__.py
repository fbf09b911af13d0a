import sys

from sqltraits_kit.publishing.standin.run import main

sys.exit(main())
