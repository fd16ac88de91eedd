# Cumulative prequential accuracy of the served model, one line per
# configuration. Written by //trainer:experiment; run it again with
#   gnuplot curves.gp
# in this folder.
$c0 << EOD
1000 0.830000
2000 0.826500
3000 0.827333
4000 0.828750
5000 0.830600
6000 0.834167
7000 0.835429
8000 0.835000
9000 0.838222
10000 0.839700
11000 0.840545
12000 0.843167
13000 0.845692
14000 0.846429
15000 0.847867
16000 0.849875
17000 0.851765
18000 0.853722
19000 0.855789
20000 0.856650
EOD
$c1 << EOD
1000 0.827000
2000 0.814500
3000 0.813667
4000 0.816750
5000 0.814800
6000 0.816167
7000 0.817857
8000 0.815875
9000 0.815667
10000 0.817600
11000 0.819455
12000 0.821333
13000 0.822692
14000 0.823500
15000 0.824000
16000 0.826500
17000 0.828176
18000 0.829389
19000 0.829421
20000 0.830700
EOD
if (strstrt(GPVAL_TERMINALS, "pngcairo") > 0) {
  set terminal pngcairo size 1000,600 noenhanced
} else {
  set terminal png size 1000,600 noenhanced
}
set output "curves.png"
set title "Cumulative prequential accuracy of the served model"
set xlabel "streamed examples"
set ylabel "cumulative prequential accuracy"
set grid
set key outside right top
plot $c0 using 1:2 with linespoints linetype 1 dashtype 1 pointtype 7 pointsize 0.7 title "proactive t=8", \
     $c1 using 1:2 with linespoints linetype 2 dashtype 1 pointtype 5 pointsize 0.7 title "t=8 topk 0.1%"
