"""What a supervisor sees and does (issue 17): the team view, monitoring an agent's
call (ChanSpy), the queue wallboard and the statistics by day and interval.
docs/supervisor.md describes it for users."""
