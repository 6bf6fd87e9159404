"""``python -m fairseg_bench`` (what ``torchrun -m fairseg_bench train ...`` launches)."""
from fairseg_bench.cli import main

if __name__ == "__main__":
    main()
